import t, { type Test } from 'tap'
import { AssertionError } from 'node:assert'
import { setTimeout as sleep } from 'node:timers/promises'
import { install } from '@sinonjs/fake-timers'
import { MemorySessionStore } from '../lib/limits/memory-store.js'
import type { SlotRequest } from '../lib/limits/store.js'
import { sessionStoreContract, type SessionStoreContractCase, type SessionStoreContractOptions } from '../lib/testing/index.js'

// The suite itself: it passes a correct store in real time (the built-in stores run it in their own
// test files), and it fails stores that break the contract, so that it cannot pass vacuously.

const EXPIRY_CASES = [
  'a pending slot expires after pendingMs; a late bind then fails',
  'a bound slot expires after holdMs, not pendingMs',
  'expired slots stop counting toward the global cap'
]

/** Runs every case; returns the failures by case name. */
async function failures (cases: SessionStoreContractCase[]): Promise<Map<string, Error>> {
  const failed = new Map<string, Error>()
  for (const { name, run } of cases) await run().catch((error: Error) => failed.set(name, error))
  return failed
}

/** Fake timers faking `performance.now()` for the memory store, and the `advance` that moves them. */
function fakeClock (t: Test): Pick<SessionStoreContractOptions, 'advance'> {
  const clock = install({ toFake: ['performance'] })
  t.teardown(() => clock.uninstall())
  return { advance: (ms) => { clock.tick(ms) } }
}

class IgnoresConcurrency extends MemorySessionStore {
  override async acquire (request: SlotRequest): ReturnType<MemorySessionStore['acquire']> {
    return await super.acquire({ ...request, concurrency: Number.POSITIVE_INFINITY })
  }
}

class ExpiresEarly extends MemorySessionStore {
  override async acquire (request: SlotRequest): ReturnType<MemorySessionStore['acquire']> {
    return await super.acquire({ ...request, pendingMs: request.pendingMs / 2 })
  }

  override async bind (slotId: string, sessionId: string, holdMs: number): Promise<boolean> {
    return await super.bind(slotId, sessionId, holdMs / 2)
  }
}

t.test('a correct store passes every case in real time; each case has a fresh store, cleaned up', async (t) => {
  const created: MemorySessionStore[] = []
  const cleaned: MemorySessionStore[] = []
  const cases = sessionStoreContract({
    createStore: async () => {
      const store = new MemorySessionStore()
      created.push(store)
      return store
    },
    cleanup: (store) => { cleaned.push(store) }
  })
  t.ok(cases.length >= 15, `${cases.length} cases`)
  t.equal(new Set(cases.map((contractCase) => contractCase.name)).size, cases.length, 'names are unique')
  t.same([...(await failures(cases)).keys()], [])
  t.equal(new Set(created).size, cases.length, 'one store per case')
  t.same(cleaned, created, 'each cleaned up after its case')
})

t.test('a store that ignores concurrency fails', async (t) => {
  let cleanups = 0
  const cases = sessionStoreContract({ createStore: () => new IgnoresConcurrency(), cleanup: () => { cleanups++ }, ...fakeClock(t) })
  const failed = await failures(cases)
  t.equal(cleanups, cases.length, 'failed cases clean up too')
  t.ok(failed.size > 0)
  for (const error of failed.values()) t.type(error, AssertionError)
  t.match(failed.get('50 parallel acquires for one key with concurrency 3: exactly 3 get a slot')?.message, /slots granted/)
  t.match(failed.get('acquire grants up to concurrency slots per key, pending and bound alike')?.message, /a third slot: expected a refusal with scope 'key', got a slot/)
  for (const name of EXPIRY_CASES.slice(0, 2)) t.match(failed.get(name)?.message, /right after (acquire|bind): expected a refusal/, name)
  t.notOk(failed.has('the global cap counts slots of every key: 100 parallel acquires, global 5, exactly 5 slots'), 'the global cap still holds')
})

t.test('a store whose slots never expire fails the expiry cases', async (t) => {
  // The memory store on a clock that never moves: it keeps every slot, and says when it would free it.
  t.test('with fake timers', async (t) => {
    const clock = install({ toFake: ['performance'] })
    t.teardown(() => clock.uninstall())
    const failed = await failures(sessionStoreContract({ createStore: () => new MemorySessionStore(), advance: () => {} }))
    t.same([...failed.keys()], EXPIRY_CASES)
    for (const error of failed.values()) t.match(error.message, /still held 10000 ms after it should have expired/)
  })
  t.test('in real time, failing after expiryTimeoutMs', async (t) => {
    const clock = install({ toFake: ['performance'] })
    t.teardown(() => clock.uninstall())
    const failed = await failures(sessionStoreContract({ createStore: () => new MemorySessionStore(), expiryTimeoutMs: 100 }))
    t.same([...failed.keys()], EXPIRY_CASES)
    for (const error of failed.values()) t.match(error.message, /still held 100 ms after it should have expired/)
  })
})

t.test('a store whose slots expire early fails the expiry cases', async (t) => {
  t.test('with fake timers: still held 1 ms before', async (t) => {
    const failed = await failures(sessionStoreContract({ createStore: () => new ExpiresEarly(), ...fakeClock(t) }))
    t.ok(EXPIRY_CASES.every((name) => failed.has(name)), [...failed.keys()].join('; '))
    for (const name of EXPIRY_CASES) t.match(failed.get(name)?.message, /1 ms before it expires: expected a refusal/)
  })
  t.test('in real time: freed too soon', async (t) => {
    const cases = sessionStoreContract({ createStore: () => new ExpiresEarly() })
    const failed = await failures(cases.filter(({ name }) => EXPIRY_CASES.includes(name)))
    t.same([...failed.keys()], EXPIRY_CASES)
    // (On a machine stalled for 150 ms, the slot is seen gone already right after it was taken.)
    for (const error of failed.values()) t.match(error.message, /freed after \d+ ms, before its \d+ ms|right after/)
  })
})

t.test('a store that grants nothing fails every case, saying what it answered instead', async (t) => {
  class AlwaysFull extends MemorySessionStore {
    override async acquire (): ReturnType<MemorySessionStore['acquire']> {
      return { ok: false, scope: 'key', retryAfterMs: 1000 }
    }
  }
  const cases = sessionStoreContract({ createStore: () => new AlwaysFull() })
  const failed = await failures(cases)
  t.equal(failed.size, cases.length)
  t.match(failed.get('each key has its own limit')?.message, /acquire for ip-1: expected a slot, got \{"ok":false,"scope":"key","retryAfterMs":1000\}/)
})

t.test('in real time, a machine too slow to see a slot held does not fail the store', async (t) => {
  class SlowBind extends MemorySessionStore {
    override async bind (slotId: string, sessionId: string, holdMs: number): Promise<boolean> {
      const bound = await super.bind(slotId, sessionId, holdMs)
      if (bound) await sleep(holdMs + 50)
      return bound
    }
  }
  const cases = sessionStoreContract({ createStore: () => new SlowBind() })
  const failed = await failures(cases.filter(({ name }) => name === 'a bound slot expires after holdMs, not pendingMs'))
  t.same([...failed.keys()], [])
})

t.test('createStore is required', async (t) => {
  const message = /options\.createStore must be a function returning a fresh, empty SessionStore/
  t.throws(() => sessionStoreContract({} as never), message)
  t.throws(() => sessionStoreContract(undefined as never), message)
})
