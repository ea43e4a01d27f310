import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { MemorySessionStore } from '../lib/limits/memory-store.js'
import type { AcquireResult, SlotRequest } from '../lib/limits/store.js'

const LONG_MS = 60_000

function request (key: string, options: Partial<SlotRequest> = {}): SlotRequest {
  return { key, concurrency: 3, pendingMs: LONG_MS, ...options }
}

async function slotOf (store: MemorySessionStore, slotRequest: SlotRequest): Promise<string> {
  const result = await store.acquire(slotRequest)
  if (!result.ok) throw new Error(`expected a slot, got ${JSON.stringify(result)}`)
  return result.slotId
}

function granted (results: AcquireResult[]): number {
  return results.filter((result) => result.ok).length
}

t.test('50 parallel acquires for one key with concurrency 3: exactly 3 get a slot', async (t) => {
  const store = new MemorySessionStore()
  const results = await Promise.all(Array.from({ length: 50 }, () => store.acquire(request('ip-1'))))
  t.equal(granted(results), 3)
  t.equal(new Set(results.flatMap((result) => result.ok ? [result.slotId] : [])).size, 3, 'slot ids are distinct')
  for (const result of results.filter((result) => !result.ok)) {
    t.match(result, { ok: false, scope: 'key' })
  }
  t.equal(store.size, 3)
})

t.test('the global cap counts slots of every key', async (t) => {
  const store = new MemorySessionStore()
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => store.acquire(request(`ip-${i % 20}`, { global: 5 }))))
  t.equal(granted(results), 5)
  t.ok(results.filter((result) => !result.ok).every((result) => !result.ok && result.scope === 'global'))
  t.equal((await store.acquire(request('ip-new'))).ok, true, 'a request without a global cap is not held back by it')
})

t.test('the key limit is reported before the global one', async (t) => {
  const store = new MemorySessionStore()
  await slotOf(store, request('ip-1', { concurrency: 1, global: 1 }))
  t.match(await store.acquire(request('ip-1', { concurrency: 1, global: 1 })), { ok: false, scope: 'key' })
  t.match(await store.acquire(request('ip-2', { concurrency: 1, global: 1 })), { ok: false, scope: 'global' })
})

t.test('retryAfterMs is the time until the limiting scope frees its first slot', async (t) => {
  const store = new MemorySessionStore()
  const first = await slotOf(store, request('ip-1', { concurrency: 2 }))
  await slotOf(store, request('ip-1', { concurrency: 2 }))
  await store.bind(first, 'sess-1', 10_000)

  const byKey = await store.acquire(request('ip-1', { concurrency: 2 }))
  t.match(byKey, { ok: false, scope: 'key' })
  const keyWait = byKey.ok ? 0 : byKey.retryAfterMs
  t.ok(keyWait > 9_000 && keyWait <= 10_000, `key: ${keyWait} ms, the bound slot frees first`)

  await slotOf(store, request('ip-2', { pendingMs: 20_000 }))
  const byGlobal = await store.acquire(request('ip-3', { global: 3 }))
  t.match(byGlobal, { ok: false, scope: 'global' })
  const globalWait = byGlobal.ok ? 0 : byGlobal.retryAfterMs
  t.ok(globalWait > 9_000 && globalWait <= 10_000, `global: ${globalWait} ms`)
  t.ok(Number.isInteger(keyWait) && Number.isInteger(globalWait), 'whole milliseconds')
})

t.test('a limit of 0 denies with retryAfterMs 0', async (t) => {
  const store = new MemorySessionStore()
  t.same(await store.acquire(request('ip-1', { concurrency: 0 })), { ok: false, scope: 'key', retryAfterMs: 0 })
  t.same(await store.acquire(request('ip-1', { global: 0 })), { ok: false, scope: 'global', retryAfterMs: 0 })
})

t.test('bind then releaseSession frees the slot', async (t) => {
  const store = new MemorySessionStore()
  const slotId = await slotOf(store, request('ip-1', { concurrency: 1 }))
  t.equal(await store.bind(slotId, 'sess-1', LONG_MS), true)
  t.match(await store.acquire(request('ip-1', { concurrency: 1 })), { ok: false })
  t.equal(await store.releaseSession('sess-1'), true)
  t.equal(store.size, 0)
  t.equal(await store.releaseSession('sess-1'), false, 'a second release frees nothing')
  t.equal((await store.acquire(request('ip-1', { concurrency: 1 }))).ok, true)
})

t.test('releaseSession with a key that does not hold the session frees nothing', async (t) => {
  const store = new MemorySessionStore()
  await store.bind(await slotOf(store, request('ip-1')), 'sess-1', LONG_MS)
  t.equal(await store.releaseSession('sess-1', 'ip-2'), false)
  t.equal(store.size, 1, 'still held')
  t.equal(await store.releaseSession('sess-1', 'ip-1'), true)
  t.equal(store.size, 0)
  t.equal(await store.releaseSession('sess-unknown', 'ip-1'), false)
})

t.test('release frees a pending slot; unknown ids are ignored', async (t) => {
  const store = new MemorySessionStore()
  const slotId = await slotOf(store, request('ip-1', { concurrency: 1 }))
  await store.release(slotId)
  t.equal(store.size, 0)
  t.equal((await store.acquire(request('ip-1', { concurrency: 1 }))).ok, true)
  await t.resolves(store.release('no-such-slot'))
  await t.resolves(store.release(slotId), 'releasing twice is harmless')
})

t.test('release of a bound slot also forgets its session', async (t) => {
  const store = new MemorySessionStore()
  const slotId = await slotOf(store, request('ip-1'))
  await store.bind(slotId, 'sess-1', LONG_MS)
  await store.release(slotId)
  t.equal(store.size, 0)
  t.equal(await store.releaseSession('sess-1'), false)
})

t.test('a late bind does not bring a released or unknown slot back', async (t) => {
  const store = new MemorySessionStore()
  const slotId = await slotOf(store, request('ip-1'))
  await store.release(slotId)
  t.equal(await store.bind(slotId, 'sess-1', LONG_MS), false)
  t.equal(await store.bind('no-such-slot', 'sess-2', LONG_MS), false)
  t.equal(store.size, 0)
  t.equal(await store.releaseSession('sess-1'), false)
})

t.test('a pending slot expires after pendingMs; a late bind then fails', async (t) => {
  const store = new MemorySessionStore()
  const slotId = await slotOf(store, request('ip-1', { concurrency: 1, pendingMs: 50 }))
  t.match(await store.acquire(request('ip-1', { concurrency: 1 })), { ok: false, scope: 'key' })
  await sleep(80)
  t.equal(store.size, 0)
  t.equal(await store.bind(slotId, 'sess-1', LONG_MS), false)
  t.equal((await store.acquire(request('ip-1', { concurrency: 1 }))).ok, true)
})

t.test('a bound slot expires after holdMs, not pendingMs', async (t) => {
  const store = new MemorySessionStore()
  const slotId = await slotOf(store, request('ip-1', { concurrency: 1, pendingMs: 50 }))
  await store.bind(slotId, 'sess-1', 150)
  await sleep(80)
  t.equal(store.size, 1, 'binding replaced the pending expiry')
  t.match(await store.acquire(request('ip-1', { concurrency: 1 })), { ok: false, scope: 'key' })
  await sleep(100)
  t.equal(store.size, 0)
  t.equal(await store.releaseSession('sess-1'), false, 'an expired session frees nothing')
  t.equal((await store.acquire(request('ip-1', { concurrency: 1 }))).ok, true)
})

t.test('expired slots stop counting toward the global cap', async (t) => {
  const store = new MemorySessionStore()
  await slotOf(store, request('ip-1', { global: 2, pendingMs: 50 }))
  await slotOf(store, request('ip-2', { global: 2 }))
  t.match(await store.acquire(request('ip-3', { global: 2 })), { ok: false, scope: 'global' })
  await sleep(80)
  t.equal((await store.acquire(request('ip-3', { global: 2 }))).ok, true)
})

t.test('binding again moves the slot to the new session', async (t) => {
  const store = new MemorySessionStore()
  const slotId = await slotOf(store, request('ip-1'))
  await store.bind(slotId, 'sess-1', LONG_MS)
  t.equal(await store.bind(slotId, 'sess-2', LONG_MS), true)
  t.equal(await store.releaseSession('sess-1'), false)
  t.equal(await store.releaseSession('sess-2'), true)
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
  await sleep(30)
  t.equal(store.size, 0)
  // Limits of 0 report 0 ms only when nothing is left in the expiry heap or under the key.
  t.same(await store.acquire(request('ip-0', { global: 0 })), { ok: false, scope: 'global', retryAfterMs: 0 })
  t.same(await store.acquire(request('ip-short', { concurrency: 0 })), { ok: false, scope: 'key', retryAfterMs: 0 })
})
