import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { AcquireResult, SessionStore, SlotRequest } from '../limits/store.js'

export interface SessionStoreContractOptions<Store extends SessionStore = SessionStore> {
  /** A fresh, empty store; called once at the start of every case. */
  createStore: () => Store | Promise<Store>
  /** Called after every case, passed or failed, with the store it used (close a client, delete keys). */
  cleanup?: ((store: Store) => void | Promise<void>) | undefined
  /**
   * Moves the store's clock forward by `ms`, for a store whose time the caller controls (fake timers
   * faking `performance.now()` or `Date`). Without it, the expiry cases wait in real time: they poll
   * until the slot frees, which takes about half a second per case.
   */
  advance?: ((ms: number) => void | Promise<void>) | undefined
  /** How long past its `pendingMs` or `holdMs` a slot may take to free before the case fails. Default 10 000 ms. */
  expiryTimeoutMs?: number | undefined
}

/** One case of the contract: register `run` with your test runner under `name`. */
export interface SessionStoreContractCase {
  readonly name: string
  /** Creates a store, checks it with `node:assert/strict` (rejecting on the first failure), cleans up. */
  readonly run: () => Promise<void>
}

const LONG_MS = 60_000
/** Short enough to wait for in real time, long enough to see the slot held first. */
const PENDING_MS = 300
const HOLD_MS = 400
const POLL_MS = 10
/** Rounding between the caller's clock and the store's (Redis counts whole milliseconds). */
const CLOCK_SLACK_MS = 2
const DEFAULT_EXPIRY_TIMEOUT_MS = 10_000

// Captured at load, so that fake timers installed later do not stop real-time waits.
const realNow = performance.now.bind(performance)

/** Time as the cases see it: the caller's clock moved by `advance`, or real time. */
class Clock {
  readonly #advance: ((ms: number) => void | Promise<void>) | undefined
  #moved = 0

  constructor (advance: ((ms: number) => void | Promise<void>) | undefined) {
    this.#advance = advance
  }

  get real (): boolean {
    return this.#advance === undefined
  }

  now (): number {
    return this.#advance === undefined ? realNow() : this.#moved
  }

  /** Lets at least `ms` pass. */
  async pass (ms: number): Promise<void> {
    if (this.#advance === undefined) {
      await sleep(ms)
    } else {
      this.#moved += ms
      await this.#advance(ms)
    }
  }
}

interface Harness {
  readonly store: SessionStore
  readonly clock: Clock
  readonly expiryTimeoutMs: number
}

type Body = (harness: Harness) => Promise<void>

function request (key: string, options: Partial<SlotRequest> = {}): SlotRequest {
  return { key, concurrency: 3, pendingMs: LONG_MS, ...options }
}

function describe (result: AcquireResult): string {
  return JSON.stringify(result)
}

function slotIdOf (result: AcquireResult, what: string): string {
  if (!result.ok) assert.fail(`${what}: expected a slot, got ${describe(result)}`)
  assert.equal(typeof result.slotId, 'string', `${what}: slotId is a string`)
  return result.slotId
}

async function slotOf (store: SessionStore, slotRequest: SlotRequest, what = `acquire for ${slotRequest.key}`): Promise<string> {
  return slotIdOf(await store.acquire(slotRequest), what)
}

/** Asserts a refusal for `scope` and returns its `retryAfterMs`. */
function refusal (result: AcquireResult, scope: 'key' | 'global', what: string): number {
  if (result.ok) assert.fail(`${what}: expected a refusal with scope '${scope}', got a slot`)
  assert.equal(result.scope, scope, `${what}: scope`)
  assert.equal(typeof result.retryAfterMs, 'number', `${what}: retryAfterMs is a number`)
  return result.retryAfterMs
}

/** Asserts a refusal for `scope` whose first slot frees within `withinMs`. */
function refusedWithin (result: AcquireResult, scope: 'key' | 'global', withinMs: number, what: string): number {
  const wait = refusal(result, scope, what)
  assert.ok(wait > 0 && wait <= withinMs, `${what}: retryAfterMs ${wait} is in (0, ${withinMs}]`)
  return wait
}

/** Tries `slotRequest` and gives back a slot it got, so that probing changes nothing. */
async function probe (store: SessionStore, slotRequest: SlotRequest): Promise<AcquireResult> {
  const result = await store.acquire(slotRequest)
  if (result.ok) await store.release(result.slotId)
  return result
}

async function assertFree (store: SessionStore, slotRequest: SlotRequest, what: string): Promise<void> {
  slotIdOf(await probe(store, slotRequest), what)
}

/**
 * Asserts that a slot taken (or bound) at `since` to live `ms` still fills `scope` for `slotRequest`.
 * In real time, a machine so slow that `ms` has already passed cannot tell; that is no fault of the store.
 */
async function assertHeld (h: Harness, slotRequest: SlotRequest, scope: 'key' | 'global', since: number, ms: number, what: string): Promise<void> {
  const result = await probe(h.store, slotRequest)
  if (result.ok && h.clock.real && h.clock.now() - since >= ms) return
  refusedWithin(result, scope, ms, what)
}

/** Waits until `slotRequest` gets a slot, polling, and fails after the case's deadline. */
async function waitUntilFree (h: Harness, slotRequest: SlotRequest, what: string): Promise<void> {
  const deadline = h.clock.now() + h.expiryTimeoutMs
  while (!(await probe(h.store, slotRequest)).ok) {
    if (h.clock.now() >= deadline) assert.fail(`${what}: still held ${h.expiryTimeoutMs} ms after it should have expired`)
    await h.clock.pass(POLL_MS)
  }
}

/** Asserts that the slot taken (or bound) at `since` to live `ms` frees then, and not before. */
async function assertExpires (h: Harness, slotRequest: SlotRequest, scope: 'key' | 'global', since: number, ms: number, what: string): Promise<void> {
  if (!h.clock.real) {
    await h.clock.pass(since + ms - 1 - h.clock.now())
    await assertHeld(h, slotRequest, scope, since, ms, `${what}, 1 ms before it expires`)
  }
  await waitUntilFree(h, slotRequest, what)
  const elapsed = h.clock.now() - since
  assert.ok(elapsed >= ms - CLOCK_SLACK_MS, `${what}: freed after ${Math.round(elapsed)} ms, before its ${ms} ms`)
}

const CASES: Record<string, Body> = {
  async 'acquire grants up to concurrency slots per key, pending and bound alike' ({ store }) {
    const key = request('ip-1', { concurrency: 2 })
    const first = await slotOf(store, key)
    assert.equal(await store.bind(first, 'sess-1', LONG_MS), true, 'bind a live slot')
    await slotOf(store, key, 'the second slot of a key with concurrency 2')
    refusedWithin(await store.acquire(key), 'key', LONG_MS, 'a third slot')
  },

  async 'each key has its own limit' ({ store }) {
    await slotOf(store, request('ip-1', { concurrency: 1 }))
    refusedWithin(await store.acquire(request('ip-1', { concurrency: 1 })), 'key', LONG_MS, 'ip-1 is full')
    const other = await slotOf(store, request('ip-2', { concurrency: 1 }), 'ip-2 is not held back by ip-1')
    await store.release(other)
    refusedWithin(await store.acquire(request('ip-1', { concurrency: 1 })), 'key', LONG_MS, 'freeing ip-2 does not free ip-1')
  },

  async '50 parallel acquires for one key with concurrency 3: exactly 3 get a slot' ({ store }) {
    const results = await Promise.all(Array.from({ length: 50 }, () => store.acquire(request('ip-1'))))
    const slotIds = results.flatMap((result) => result.ok ? [result.slotId] : [])
    assert.equal(slotIds.length, 3, 'slots granted')
    assert.equal(new Set(slotIds).size, 3, 'slot ids are distinct')
    for (const result of results.filter((result) => !result.ok)) refusedWithin(result, 'key', LONG_MS, 'a refused acquire')
  },

  async 'the global cap counts slots of every key: 100 parallel acquires, global 5, exactly 5 slots' ({ store }) {
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      store.acquire(request(`ip-${i % 20}`, { concurrency: 10, global: 5 }))))
    assert.equal(results.filter((result) => result.ok).length, 5, 'slots granted')
    for (const result of results.filter((result) => !result.ok)) refusedWithin(result, 'global', LONG_MS, 'a refused acquire')
    await slotOf(store, request('ip-new'), 'a request without a global cap is not held back by it')
  },

  async 'the key limit is reported before the global one' ({ store }) {
    const limits = { concurrency: 1, global: 1 }
    await slotOf(store, request('ip-1', limits))
    refusedWithin(await store.acquire(request('ip-1', limits)), 'key', LONG_MS, 'key and global both full')
    refusedWithin(await store.acquire(request('ip-2', limits)), 'global', LONG_MS, 'only global full')
  },

  async 'retryAfterMs is the time until the limiting scope frees its first slot' ({ store }) {
    const first = await slotOf(store, request('ip-1', { concurrency: 2 }))
    await slotOf(store, request('ip-1', { concurrency: 2 }))
    assert.equal(await store.bind(first, 'sess-1', 10_000), true, 'bind')
    const keyWait = refusal(await store.acquire(request('ip-1', { concurrency: 2 })), 'key', 'ip-1 full')
    assert.ok(keyWait > 9_000 && keyWait <= 10_000, `key: ${keyWait} ms, the bound slot frees first`)

    await slotOf(store, request('ip-2', { pendingMs: 20_000 }))
    const globalWait = refusal(await store.acquire(request('ip-3', { global: 3 })), 'global', 'global 3 full')
    assert.ok(globalWait > 9_000 && globalWait <= 10_000, `global: ${globalWait} ms, the slot of ip-1 frees first`)
  },

  async 'a limit of 0 refuses with retryAfterMs 0' ({ store }) {
    assert.equal(refusal(await store.acquire(request('ip-1', { concurrency: 0 })), 'key', 'concurrency 0'), 0, 'concurrency 0: retryAfterMs')
    assert.equal(refusal(await store.acquire(request('ip-1', { global: 0 })), 'global', 'global 0'), 0, 'global 0: retryAfterMs')
  },

  async 'bind ties the slot to its session and moves its expiry to holdMs from now' (h) {
    const { store, clock } = h
    const key = request('ip-1', { concurrency: 1, pendingMs: PENDING_MS })
    const slotId = await slotOf(store, key)
    assert.equal(await store.bind(slotId, 'sess-1', LONG_MS), true, 'bind a pending slot')
    const wait = refusedWithin(await store.acquire(key), 'key', LONG_MS, 'right after bind')
    assert.ok(wait > PENDING_MS, `retryAfterMs ${wait} counts from the bind's holdMs, not pendingMs ${PENDING_MS}`)
    await clock.pass(PENDING_MS + POLL_MS)
    refusedWithin(await store.acquire(key), 'key', LONG_MS, 'past pendingMs, the bound slot is still held')
    assert.equal(await store.releaseSession('sess-1'), true, 'the session frees its slot')
    await assertFree(store, key, 'after releaseSession')
  },

  async 'binding again moves the slot to the new session' ({ store }) {
    const key = request('ip-1', { concurrency: 1 })
    const slotId = await slotOf(store, key)
    assert.equal(await store.bind(slotId, 'sess-1', LONG_MS), true, 'first bind')
    assert.equal(await store.bind(slotId, 'sess-2', 20_000), true, 'second bind')
    refusedWithin(await store.acquire(key), 'key', 20_000, 'the second bind sets the expiry to its holdMs')
    assert.equal(await store.releaseSession('sess-1'), false, 'the first session no longer holds the slot')
    refusedWithin(await store.acquire(key), 'key', 20_000, 'still held')
    assert.equal(await store.releaseSession('sess-2'), true, 'the second session holds it')
    await assertFree(store, key, 'after releaseSession')
  },

  async 'a late bind does not bring a released or unknown slot back' ({ store }) {
    const key = request('ip-1', { concurrency: 1 })
    const slotId = await slotOf(store, key)
    await store.release(slotId)
    assert.equal(await store.bind(slotId, 'sess-1', LONG_MS), false, 'bind after release')
    assert.equal(await store.bind('no-such-slot', 'sess-2', LONG_MS), false, 'bind of an unknown id')
    await assertFree(store, key, 'after the late binds')
    assert.equal(await store.releaseSession('sess-1'), false, 'the late-bound session holds nothing')
    assert.equal(await store.releaseSession('sess-2'), false, 'the unknown slot\'s session holds nothing')
  },

  async 'release frees a slot, with its session; twice or with an unknown id it changes nothing' ({ store }) {
    const key = request('ip-1', { concurrency: 1 })
    const pending = await slotOf(store, key)
    await store.release(pending)
    const bound = await slotOf(store, key, 'a slot after release of a pending one')
    await store.release(pending)
    await store.release('no-such-slot')
    refusedWithin(await store.acquire(key), 'key', LONG_MS, 'releasing a released or unknown id frees no other slot')

    assert.equal(await store.bind(bound, 'sess-1', LONG_MS), true, 'bind')
    await store.release(bound)
    await assertFree(store, key, 'after release of a bound slot')
    assert.equal(await store.releaseSession('sess-1'), false, 'release also freed the session')
    await store.release(bound)
  },

  async 'releaseSession frees the bound slot; with a key, only for the key that holds it' ({ store }) {
    const key = request('ip-1', { concurrency: 1 })
    assert.equal(await store.bind(await slotOf(store, key), 'sess-1', LONG_MS), true, 'bind')
    refusedWithin(await store.acquire(key), 'key', LONG_MS, 'bound')
    assert.equal(await store.releaseSession('sess-1', 'ip-2'), false, 'another key')
    refusedWithin(await store.acquire(key), 'key', LONG_MS, 'another key frees nothing')
    assert.equal(await store.releaseSession('sess-1', 'ip-1'), true, 'the key that holds it')
    await assertFree(store, key, 'after releaseSession')
    assert.equal(await store.releaseSession('sess-1'), false, 'a second release frees nothing')
    assert.equal(await store.releaseSession('sess-1', 'ip-1'), false, 'a second release with the key frees nothing')
    assert.equal(await store.releaseSession('sess-unknown'), false, 'an unknown session')
    assert.equal(await store.releaseSession('sess-unknown', 'ip-1'), false, 'an unknown session with a key')

    assert.equal(await store.bind(await slotOf(store, key), 'sess-2', LONG_MS), true, 'bind')
    assert.equal(await store.releaseSession('sess-2'), true, 'without a key, whichever key holds it')
    await assertFree(store, key, 'after releaseSession without a key')
  },

  async 'a pending slot expires after pendingMs; a late bind then fails' (h) {
    const { store, clock } = h
    const key = request('ip-1', { concurrency: 1, pendingMs: PENDING_MS })
    const since = clock.now()
    const slotId = await slotOf(store, key)
    await assertHeld(h, key, 'key', since, PENDING_MS, 'right after acquire')
    await assertExpires(h, key, 'key', since, PENDING_MS, 'the pending slot')
    assert.equal(await store.bind(slotId, 'sess-1', LONG_MS), false, 'bind after expiry')
    assert.equal(await store.releaseSession('sess-1'), false, 'the late-bound session holds nothing')
    const next = await slotOf(store, request('ip-1', { concurrency: 1 }), 'the late bind brought nothing back')
    await store.release(slotId)
    refusedWithin(await store.acquire(key), 'key', LONG_MS, 'releasing the expired id frees no other slot')
    await store.release(next)
  },

  async 'a bound slot expires after holdMs, not pendingMs' (h) {
    const { store, clock } = h
    const key = request('ip-1', { concurrency: 1 })
    const slotId = await slotOf(store, key)
    const since = clock.now()
    assert.equal(await store.bind(slotId, 'sess-1', HOLD_MS), true, 'bind')
    await assertHeld(h, key, 'key', since, HOLD_MS, 'right after bind')
    await assertExpires(h, key, 'key', since, HOLD_MS, 'the bound slot')
    assert.equal(await store.releaseSession('sess-1'), false, 'an expired session frees nothing')
    assert.equal(await store.bind(slotId, 'sess-2', LONG_MS), false, 'bind after expiry')
    await assertFree(store, key, 'the late bind brought nothing back')
  },

  async 'expired slots stop counting toward the global cap' (h) {
    const { store, clock } = h
    const since = clock.now()
    await slotOf(store, request('ip-1', { global: 2, pendingMs: PENDING_MS }))
    await slotOf(store, request('ip-2', { global: 2 }))
    const third = request('ip-3', { global: 2 })
    await assertHeld(h, third, 'global', since, PENDING_MS, 'right after acquire')
    await assertExpires(h, third, 'global', since, PENDING_MS, 'the global cap')
  },

  async 'slot ids are unique, also after release' ({ store }) {
    const ids: string[] = []
    for (let i = 0; i < 20; i++) ids.push(await slotOf(store, request(`ip-${i % 4}`, { concurrency: 10 })))
    for (const slotId of ids.slice(0, 10)) await store.release(slotId)
    for (let i = 0; i < 10; i++) ids.push(await slotOf(store, request(`ip-${i % 4}`, { concurrency: 10 })))
    assert.equal(new Set(ids).size, ids.length, `${ids.length} acquires, ${new Set(ids).size} distinct ids`)
  }
}

/**
 * The `SessionStore` contract (see `SessionStore`) as a list of named cases, runner-agnostic: each
 * `run` creates a fresh store with `createStore`, checks it with `node:assert/strict` and rejects
 * on the first failure. Register them with any runner:
 *
 * ```ts
 * for (const { name, run } of sessionStoreContract({ createStore })) test(name, run)
 * ```
 */
export function sessionStoreContract<Store extends SessionStore> (options: SessionStoreContractOptions<Store>): SessionStoreContractCase[] {
  if (typeof options?.createStore !== 'function') {
    throw new TypeError('sessionStoreContract: options.createStore must be a function returning a fresh, empty SessionStore')
  }
  const { createStore, cleanup, advance, expiryTimeoutMs = DEFAULT_EXPIRY_TIMEOUT_MS } = options
  return Object.entries(CASES).map(([name, body]) => ({
    name,
    run: async () => {
      const store = await createStore()
      try {
        await body({ store, clock: new Clock(advance), expiryTimeoutMs })
      } finally {
        await cleanup?.(store)
      }
    }
  }))
}
