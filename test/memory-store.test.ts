import t from 'tap'
import { install, type Clock } from '@sinonjs/fake-timers'
import { MemorySessionStore } from '../lib/limits/memory-store.js'
import type { SlotRequest } from '../lib/limits/store.js'
import { sessionStoreContract } from '../lib/testing.js'

const LONG_MS = 60_000

// The store's clock is performance.now(): faked per test, so time passes only when a test says so.
let clock: Clock
t.beforeEach(() => { clock = install({ toFake: ['performance'] }) })
t.afterEach(() => { clock.uninstall() })

for (const { name, run } of sessionStoreContract({
  createStore: () => new MemorySessionStore(),
  advance: (ms) => { clock.tick(ms) },
  tracking: true
})) {
  t.test(name, run)
}

function request (key: string, options: Partial<SlotRequest> = {}): SlotRequest {
  return { key, concurrency: 3, pendingMs: LONG_MS, ...options }
}

async function slotOf (store: MemorySessionStore, slotRequest: SlotRequest): Promise<string> {
  const result = await store.acquire(slotRequest)
  if (!result.ok) throw new Error(`expected a slot, got ${JSON.stringify(result)}`)
  return result.slotId
}

t.test('size counts live slots, pending and bound, and nothing freed or expired', async (t) => {
  const store = new MemorySessionStore()
  await Promise.all(Array.from({ length: 50 }, () => store.acquire(request('ip-1'))))
  t.equal(store.size, 3, '50 parallel acquires, concurrency 3')

  const [first, second, third] = await Promise.all([1, 2, 3].map(() => slotOf(store, request('ip-2', { pendingMs: 50 }))))
  t.equal(store.size, 6)
  await store.bind(first as string, 'sess-1', 150)
  t.equal(await store.releaseSession('sess-1', 'ip-1'), false)
  t.equal(store.size, 6, 'a key that does not hold the session frees nothing')
  await store.release(second as string)
  t.equal(await store.bind(second as string, 'sess-2', LONG_MS), false)
  t.equal(store.size, 5, 'released, and a late bind does not bring it back')
  clock.tick(80)
  t.equal(store.size, 4, 'the pending slot expired; binding replaced the pending expiry of the bound one')
  t.equal(await store.bind(third as string, 'sess-3', LONG_MS), false)
  clock.tick(100)
  t.equal(store.size, 3, 'the bound slot expired after holdMs')
  t.equal(await store.releaseSession('sess-1'), false)
})

t.test('retryAfterMs is whole milliseconds, rounded up', async (t) => {
  const store = new MemorySessionStore()
  await slotOf(store, request('ip-1', { concurrency: 1, pendingMs: 1_000 }))
  clock.tick(0.25)
  t.same(await store.acquire(request('ip-1', { concurrency: 1 })), { ok: false, scope: 'key', retryAfterMs: 1_000 })
  t.same(await store.acquire(request('ip-2', { global: 1 })), { ok: false, scope: 'global', retryAfterMs: 1_000 })
})

t.test('a session id bound twice belongs to the later slot', async (t) => {
  const store = new MemorySessionStore()
  const first = await slotOf(store, request('ip-1'))
  const second = await slotOf(store, request('ip-1'))
  await store.bind(first, 'sess-1', LONG_MS)
  await store.bind(second, 'sess-1', LONG_MS)
  await store.release(first)
  t.equal(store.size, 1)
  t.equal(await store.releaseSession('sess-1'), true, 'releasing the first slot left the second one reachable')
  t.equal(store.size, 0)
})

t.test('the global retryAfterMs follows the earliest expiry whatever order slots were taken, bound and freed in', async (t) => {
  const store = new MemorySessionStore()
  const holdSeconds = [90, 60, 85, 65, 80, 70, 75, 62, 88, 67, 83, 72, 78, 61, 89, 66]
  const slots = []
  for (const [i, seconds] of holdSeconds.entries()) {
    slots.push(await slotOf(store, request(`ip-${i % 4}`, { concurrency: 4, pendingMs: (100 - seconds) * 1000 })))
  }
  for (const [i, slotId] of slots.entries()) await store.bind(slotId, `sess-${i}`, (holdSeconds[i] as number) * 1000)

  const live = new Map(slots.map((slotId, i) => [slotId, holdSeconds[i] as number]))
  for (const i of [3, 12, 7, 0, 9]) {
    await store.release(slots[i] as string)
    live.delete(slots[i] as string)
  }
  while (live.size > 0) {
    const [slotId, seconds] = [...live].reduce((earliest, entry) => entry[1] < earliest[1] ? entry : earliest)
    const result = await store.acquire(request('ip-other', { global: live.size }))
    const waitMs = result.ok ? 0 : result.retryAfterMs
    t.ok(waitMs > (seconds - 1) * 1000 && waitMs <= seconds * 1000, `${live.size} live: first frees in ${seconds} s (got ${waitMs} ms)`)
    await store.release(slotId)
    live.delete(slotId)
  }
  t.equal(store.size, 0)
})

t.test('memory stays bounded: nothing is kept after many acquire/release cycles', async (t) => {
  const store = new MemorySessionStore()
  let sessionsFreed = 0
  for (let round = 0; round < 2_000; round++) {
    const key = `ip-${round % 50}`
    const slotId = await slotOf(store, request(key))
    if (round % 3 === 0) {
      await store.release(slotId)
    } else {
      await store.bind(slotId, `sess-${round}`, LONG_MS)
      if (await store.releaseSession(`sess-${round}`, key)) sessionsFreed++
    }
  }
  t.equal(sessionsFreed, 1_333)
  await slotOf(store, request('ip-short', { pendingMs: 10 }))
  clock.tick(30)
  t.equal(store.size, 0)
  // Limits of 0 report 0 ms only when nothing is left in the expiry heap or under the key.
  t.same(await store.acquire(request('ip-0', { global: 0 })), { ok: false, scope: 'global', retryAfterMs: 0 })
  t.same(await store.acquire(request('ip-short', { concurrency: 0 })), { ok: false, scope: 'key', retryAfterMs: 0 })
})

t.test('tracking a tracked session again starts its entry afresh', async (t) => {
  const store = new MemorySessionStore()
  await store.track('sess-1', { firstCheckMs: 0 })
  t.same((await store.claimDue({ owner: 'a', leaseMs: LONG_MS, limit: 10 })).sessions.map(({ sessionId }) => sessionId), ['sess-1'])
  t.equal(await store.reschedule('sess-1', 'a', { delayMs: 0, checks: 2, deliveries: 1, ended: false }), true)
  clock.tick(500)
  t.equal(await store.bind(await slotOf(store, request('ip-1')), 'sess-1', LONG_MS, { firstCheckMs: 1_000 }), true)
  t.same(await store.claimDue({ owner: 'a', leaseMs: LONG_MS, limit: 10 }), { sessions: [], nextDueMs: 1_000 }, 'due after the new firstCheckMs')
  clock.tick(1_000)
  t.same((await store.claimDue({ owner: 'b', leaseMs: LONG_MS, limit: 10 })).sessions,
    [{ sessionId: 'sess-1', key: 'ip-1', ageMs: 1_000, checks: 0, ended: false, deliveries: 0 }], 'a fresh entry, with the key of its slot')
  t.same(await store.sessionsOf('ip-1'), ['sess-1'])
})

t.test('claims come earliest due first whatever order sessions were tracked, rescheduled and untracked in', async (t) => {
  const store = new MemorySessionStore()
  const dueSeconds = [90, 60, 85, 65, 80, 70, 75, 62, 88, 67, 83, 72, 78, 61, 89, 66]
  for (const [i, seconds] of dueSeconds.entries()) await store.track(`sess-${i}`, { firstCheckMs: (100 - seconds) * 1000 })
  t.equal((await store.claimDue({ owner: 'a', leaseMs: 0, limit: 100 })).nextDueMs, 10_000, 'nothing due yet')
  clock.tick(40_000)
  const claimed = await store.claimDue({ owner: 'a', leaseMs: LONG_MS, limit: 100 })
  t.equal(claimed.sessions.length, dueSeconds.length, 'all due')
  const due = new Map<string, number>()
  for (const [i, seconds] of dueSeconds.entries()) {
    await store.reschedule(`sess-${i}`, 'a', { delayMs: seconds * 1000 })
    due.set(`sess-${i}`, seconds)
  }
  for (const i of [3, 12, 7, 0, 9]) {
    await store.untrack(`sess-${i}`)
    due.delete(`sess-${i}`)
  }
  const expected = [...due].sort((a, b) => a[1] - b[1]).map(([sessionId]) => sessionId)
  clock.tick(100_000)
  const order: string[] = []
  for (let result = await store.claimDue({ owner: 'b', leaseMs: LONG_MS, limit: 3 }); result.sessions.length > 0;
    result = await store.claimDue({ owner: 'b', leaseMs: LONG_MS, limit: 3 })) {
    t.ok(result.sessions.length <= 3)
    order.push(...result.sessions.map(({ sessionId }) => sessionId))
  }
  t.same(order, expected)
})

t.test('nextDueMs is whole milliseconds, rounded up, and 0 for an entry due already', async (t) => {
  const store = new MemorySessionStore()
  await store.track('sess-1', { firstCheckMs: 1_000 })
  clock.tick(0.25)
  t.same(await store.claimDue({ owner: 'a', leaseMs: LONG_MS, limit: 1 }), { sessions: [], nextDueMs: 1_000 })
  clock.tick(2_000)
  await store.track('sess-2', { firstCheckMs: 0 })
  t.same(await store.claimDue({ owner: 'a', leaseMs: LONG_MS, limit: 0 }), { sessions: [], nextDueMs: 0 }, 'limit 0 claims nothing')
  t.equal((await store.claimDue({ owner: 'a', leaseMs: LONG_MS, limit: 1 })).nextDueMs, 0, 'one overdue, one due now')
})

t.test('an owner whose lease ran out keeps the entry until another owner claims it', async (t) => {
  const store = new MemorySessionStore()
  await store.track('sess-1', { firstCheckMs: 0 })
  await store.claimDue({ owner: 'a', leaseMs: 1_000, limit: 1 })
  clock.tick(5_000)
  t.equal(await store.markEnded('sess-1'), true, 'markEnded leaves an overdue entry due')
  t.equal(await store.untrack('sess-1', 'b'), false)
  t.equal(await store.reschedule('sess-1', 'a', { delayMs: 0 }), true, 'owner a, late')
  await store.claimDue({ owner: 'a', leaseMs: 1_000, limit: 1 })
  clock.tick(5_000)
  t.same((await store.claimDue({ owner: 'b', leaseMs: 1_000, limit: 1 })).sessions.map(({ ended }) => ended), [true], 'taken over, ended')
  t.equal(await store.untrack('sess-1', 'a'), false, 'owner a lost it')
  t.equal(await store.untrack('sess-1', 'b'), true)
})

t.test('memory stays bounded: nothing is kept after many track/untrack cycles', async (t) => {
  const store = new MemorySessionStore()
  for (let round = 0; round < 2_000; round++) {
    const key = `ip-${round % 50}`
    const sessionId = `sess-${round}`
    if (round % 2 === 0) await store.track(sessionId, { firstCheckMs: round % 7 })
    else await store.bind(await slotOf(store, request(key)), sessionId, LONG_MS, { firstCheckMs: round % 5 })
    if (round % 3 === 0) await store.markEnded(sessionId)
    if (round % 4 === 0) await store.releaseSession(sessionId)
    clock.tick(3)
    for (const { sessionId: claimed } of (await store.claimDue({ owner: 'a', leaseMs: LONG_MS, limit: 2 })).sessions) {
      t.equal(await store.untrack(claimed, 'a'), true)
    }
  }
  clock.tick(10)
  for (const { sessionId } of (await store.claimDue({ owner: 'b', leaseMs: LONG_MS, limit: 2_000 })).sessions) await store.untrack(sessionId)
  t.same(await store.claimDue({ owner: 'b', leaseMs: LONG_MS, limit: 10 }), { sessions: [], nextDueMs: undefined })
  t.equal(store.size, 0)
})
