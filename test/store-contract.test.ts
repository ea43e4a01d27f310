import t, { type Test } from 'tap'
import { AssertionError } from 'node:assert'
import { setTimeout as sleep } from 'node:timers/promises'
import { install } from '@sinonjs/fake-timers'
import { MemorySessionStore } from '../lib/limits/memory-store.js'
import { TRACKING_METHODS, type ClaimRequest, type ClaimResult, type RescheduleRequest, type SessionStore, type SlotRequest } from '../lib/limits/store.js'
import { sessionStoreContract, type SessionStoreContractCase, type SessionStoreContractOptions } from '../lib/testing.js'

// The suite itself: it passes a correct store in real time (the built-in stores run it in their own
// test files), and it fails stores that break the contract, so that it cannot pass vacuously.

const EXPIRY_CASES = [
  'a pending slot expires after pendingMs; a late bind then fails',
  'a bound slot expires after holdMs, not pendingMs',
  'expired slots stop counting toward the global cap'
]

/** The tracking cases that wait for an entry to become due, or for a tracked session's slot to expire. */
const TRACKING_TIMED_CASES = [
  'tracking: bind with track holds the slot and makes the session due after firstCheckMs, not before',
  'tracking: a claim leases its entries: no other owner claims them until the lease ends, then one takes them over',
  'tracking: claimDue claims at most limit entries, earliest due first',
  'tracking: the owner reschedules an entry: due again after delayMs, with checks and deliveries set',
  'tracking: a tracked session\'s slot still expires after holdMs; the entry stays'
]

const EXACTLY_ONCE = 'tracking: 200 parallel claims by 4 owners claim each due entry exactly once'

function isTracking (name: string): boolean {
  return name.startsWith('tracking: ')
}

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
  t.ok(cases.filter(({ name }) => isTracking(name)).length >= 15, 'with the tracking cases')
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
    t.same([...failed.keys()], [...EXPIRY_CASES, ...TRACKING_TIMED_CASES])
    for (const error of failed.values()) t.match(error.message, /(still held|not due) 10000 ms after it should have (expired|been)|the two due first/)
  })
  t.test('in real time, failing after expiryTimeoutMs', async (t) => {
    const clock = install({ toFake: ['performance'] })
    t.teardown(() => clock.uninstall())
    const failed = await failures(sessionStoreContract({ createStore: () => new MemorySessionStore(), expiryTimeoutMs: 100 }))
    t.same([...failed.keys()], [...EXPIRY_CASES, ...TRACKING_TIMED_CASES])
    for (const error of failed.values()) t.match(error.message, /(still held|not due) 100 ms after it should have (expired|been)|the two due first/)
  })
})

t.test('a store whose slots expire early fails the expiry cases', async (t) => {
  t.test('with fake timers: still held 1 ms before', async (t) => {
    const failed = await failures(sessionStoreContract({ createStore: () => new ExpiresEarly(), ...fakeClock(t) }))
    t.ok(EXPIRY_CASES.every((name) => failed.has(name)), [...failed.keys()].join('; '))
    for (const name of EXPIRY_CASES) t.match(failed.get(name)?.message, /1 ms before it expires: expected a refusal/)
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
  t.same(cases.map(({ name }) => name).filter((name) => !failed.has(name)), ['tracking: track starts tracking a session that holds no slot, without a key'],
    'only the case that takes no slot passes')
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

/** `store` seen through a proxy that hides `hidden` of its methods. */
function withoutMethods (store: MemorySessionStore, hidden: readonly string[]): SessionStore {
  return new Proxy(store, {
    get: (target, property) => {
      if (hidden.includes(property as string)) return undefined
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

t.test('a store that breaks the lease fails the tracking cases', async (t) => {
  t.test('claims leased for 0 ms: two owners claim one entry', async (t) => {
    class NoLease extends MemorySessionStore {
      override async claimDue (request: ClaimRequest): Promise<ClaimResult> {
        return await super.claimDue({ ...request, leaseMs: 0 })
      }
    }
    const failed = await failures(sessionStoreContract({ createStore: () => new NoLease(), ...fakeClock(t) }))
    for (const error of failed.values()) t.type(error, AssertionError)
    t.match(failed.get(EXACTLY_ONCE)?.message, /claims, \d+ distinct sessions: an entry was claimed twice/)
    t.match(failed.get('tracking: a claim leases its entries: no other owner claims them until the lease ends, then one takes them over')?.message,
      /the leased entry, for owner B: claimed 1 ms before it is due/)
    t.notOk([...failed.keys()].some((name) => !isTracking(name)), 'the slot cases pass')
  })
  t.test('any owner may reschedule or untrack', async (t) => {
    class AnyOwner extends MemorySessionStore {
      readonly #owners = new Map<string, string>()
      override async claimDue (request: ClaimRequest): Promise<ClaimResult> {
        const result = await super.claimDue(request)
        for (const { sessionId } of result.sessions) this.#owners.set(sessionId, request.owner)
        return result
      }

      override async reschedule (sessionId: string, _owner: string, request: RescheduleRequest): Promise<boolean> {
        return await super.reschedule(sessionId, this.#owners.get(sessionId) ?? '', request)
      }

      override async untrack (sessionId: string): Promise<boolean> {
        return await super.untrack(sessionId)
      }
    }
    const failed = await failures(sessionStoreContract({ createStore: () => new AnyOwner(), ...fakeClock(t) }))
    t.match(failed.get('tracking: only the owner, the tracker that claimed the entry last, reschedules it')?.message, /another owner/)
    t.match(failed.get('tracking: untrack removes the entry and frees its slot; with an owner, only by the tracker that claimed it last')?.message,
      /untrack with an owner, not claimed/)
    t.match(failed.get(EXACTLY_ONCE)?.message, /untrack by an owner that did not claim it/)
  })
})

t.test('a store whose bind ignores track fails the tracking cases that bind', async (t) => {
  class BindsOnly extends MemorySessionStore {
    override async bind (slotId: string, sessionId: string, holdMs: number): Promise<boolean> {
      return await super.bind(slotId, sessionId, holdMs)
    }
  }
  const failed = await failures(sessionStoreContract({ createStore: () => new BindsOnly(), ...fakeClock(t) }))
  t.match(failed.get('tracking: bind with track holds the slot and makes the session due after firstCheckMs, not before')?.message,
    /the tracked session: claimed 1 ms before it is due|not due/)
  t.match(failed.get('tracking: bind without track, or a bind that fails, tracks nothing')?.message, /only the session bound with track is due/)
  t.notOk([...failed.keys()].some((name) => !isTracking(name)), 'the slot cases pass')
})

t.test('tracking cases and stores without the tracking methods', async (t) => {
  const names = sessionStoreContract({ createStore: () => new MemorySessionStore() }).map(({ name }) => name)
  t.test('a store with none of them passes the tracking cases without checks', async (t) => {
    const cases = sessionStoreContract({ createStore: () => withoutMethods(new MemorySessionStore(), TRACKING_METHODS), ...fakeClock(t) })
    t.same(cases.map(({ name }) => name), names, 'every case is listed')
    t.same([...(await failures(cases)).keys()], [])
  })
  t.test('tracking: false leaves the tracking cases out', async (t) => {
    const cases = sessionStoreContract({ createStore: () => withoutMethods(new MemorySessionStore(), TRACKING_METHODS), tracking: false, ...fakeClock(t) })
    t.same(cases.map(({ name }) => name), names.filter((name) => !isTracking(name)))
    t.same([...(await failures(cases)).keys()], [])
  })
  t.test('tracking: true fails a store with none of them', async (t) => {
    const cases = sessionStoreContract({ createStore: () => withoutMethods(new MemorySessionStore(), TRACKING_METHODS), tracking: true, ...fakeClock(t) })
    const failed = await failures(cases)
    t.same([...failed.keys()], names.filter(isTracking))
    for (const error of failed.values()) {
      t.match(error.message, /the store implements no tracking method but not track, claimDue, reschedule, untrack, markEnded, sessionsOf: a store that backs session tracking needs all of them/)
    }
  })
  t.test('a store with some but not all of them fails every tracking case, naming what is missing', async (t) => {
    const failed = await failures(sessionStoreContract({ createStore: () => withoutMethods(new MemorySessionStore(), ['markEnded', 'sessionsOf']), ...fakeClock(t) }))
    t.same([...failed.keys()], names.filter(isTracking))
    for (const error of failed.values()) {
      t.type(error, AssertionError)
      t.match(error.message, /the store implements track, claimDue, reschedule, untrack but not markEnded, sessionsOf/)
    }
  })
})

t.test('sessionState (optional): a store without it passes its cases unchecked; a wrong one fails them', async (t) => {
  t.same([...(await failures(sessionStoreContract({ createStore: () => withoutMethods(new MemorySessionStore(), ['sessionState']), ...fakeClock(t) }))).keys()], [])
  class ForgetsKeys extends MemorySessionStore {
    override async sessionState (sessionId: string): ReturnType<MemorySessionStore['sessionState']> {
      const state = await super.sessionState(sessionId)
      return state === undefined ? undefined : { ...state, key: undefined }
    }
  }
  const failed = await failures(sessionStoreContract({ createStore: () => new ForgetsKeys(), ...fakeClock(t) }))
  t.same([...failed.keys()], [
    'sessionState (optional): a bound session has its slot\'s key; a pending, freed or unknown one is undefined',
    'tracking: sessionState (optional) knows a tracked session until it is untracked, and whether it ended'
  ])
})

t.test('createStore is required', async (t) => {
  const message = /options\.createStore must be a function returning a fresh, empty SessionStore/
  t.throws(() => sessionStoreContract({} as never), message)
  t.throws(() => sessionStoreContract(undefined as never), message)
})
