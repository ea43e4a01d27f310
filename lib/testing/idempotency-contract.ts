import assert from 'node:assert/strict'
import type { IdempotencyBeginRequest, IdempotencyBeginResult, IdempotencyStore } from '../idempotency/idempotency-store.js'
import { checkJustBefore, CLOCK_SLACK_MS, contractCases, LONG_MS, pollUntil, type Body, type Harness } from './contract-clock.js'
import type { MaybePromise } from '../maybe-promise.js'

export interface IdempotencyStoreContractOptions<Store extends IdempotencyStore = IdempotencyStore> {
  /** A fresh, empty store; called once at the start of every case. */
  createStore: () => MaybePromise<Store>
  /** Called after every case, passed or failed, with the store it used (close a client, delete keys). */
  cleanup?: ((store: Store) => MaybePromise<void>) | undefined
  /**
   * Moves the store's clock forward by `ms`, for a store whose time the caller controls (fake timers
   * faking `performance.now()` or `Date`). Without it, the expiry cases wait in real time, polling.
   */
  advance?: ((ms: number) => MaybePromise<void>) | undefined
  /** How long past its `pendingMs` or `ttlMs` an entry may take to be forgotten before the case fails. Default 10 000 ms. */
  expiryTimeoutMs?: number | undefined
}

/** One case of the contract: register `run` with your test runner under `name`. */
export interface IdempotencyStoreContractCase {
  readonly name: string
  /** Creates a store, checks it with `node:assert/strict` (rejecting on the first failure), cleans up. */
  readonly run: () => Promise<void>
}

/** Short enough to wait for in real time, long enough to see the entry kept first. */
const SHORT_MS = 300
const REPLY = '{"session_id":"sess-1","token":"t1"}'

function begin (key: string, attempt: string, options: Partial<IdempotencyBeginRequest> = {}): IdempotencyBeginRequest {
  return { key, attempt, fingerprint: 'fp-1', pendingMs: LONG_MS, ...options }
}

function assertState (result: IdempotencyBeginResult, expected: IdempotencyBeginResult, what: string): void {
  assert.deepEqual(result, expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(result)}`)
}

async function assertBegins (store: IdempotencyStore, request: IdempotencyBeginRequest, expected: IdempotencyBeginResult, what: string): Promise<void> {
  assertState(await store.beginIdempotent(request), expected, what)
}

/**
 * Asserts that what `write` stored at `since` for `ms` is answered as `held` until then and forgotten
 * after: a begin by a new attempt then starts afresh.
 */
async function assertForgotten (h: Harness<IdempotencyStore>, key: string, since: number, ms: number, held: IdempotencyBeginResult, what: string): Promise<void> {
  const { store, clock } = h
  let probes = 0
  await checkJustBefore(clock, since, ms, async () => {
    await assertBegins(store, begin(key, `probe-${++probes}`), held, `${what}, 1 ms before it expires`)
  })
  await pollUntil(h, clock.now(), async () => (await store.beginIdempotent(begin(key, `late-${++probes}`))).state === 'started',
    `${what}: still kept ${h.expiryTimeoutMs} ms after it should have expired`)
  const elapsed = clock.now() - since
  assert.ok(elapsed >= ms - CLOCK_SLACK_MS, `${what}: forgotten after ${Math.round(elapsed)} ms, before its ${ms} ms`)
}

const CASES: Record<string, Body<IdempotencyStore>> = {
  async 'a free key starts; a repeat is in flight; another fingerprint is a mismatch' ({ store }) {
    await assertBegins(store, begin('k-1', 'a'), { state: 'started' }, 'the first begin')
    await assertBegins(store, begin('k-1', 'b'), { state: 'in-flight' }, 'a repeat while the first runs')
    await assertBegins(store, begin('k-1', 'c', { fingerprint: 'fp-2' }), { state: 'mismatch' }, 'another fingerprint while the first runs')
  },

  async 'a completed key replays its reply to every repeat; another fingerprint is a mismatch' ({ store }) {
    await assertBegins(store, begin('k-1', 'a'), { state: 'started' }, 'the first begin')
    assert.equal(await store.completeIdempotent('k-1', 'a', REPLY, LONG_MS), true, 'the attempt that began it completes it')
    for (const attempt of ['b', 'c']) await assertBegins(store, begin('k-1', attempt), { state: 'completed', reply: REPLY }, `repeat ${attempt}`)
    await assertBegins(store, begin('k-1', 'd', { fingerprint: 'fp-2' }), { state: 'mismatch' }, 'another fingerprint')
    assert.equal(await store.completeIdempotent('k-1', 'a', '{"other":1}', LONG_MS), false, 'a second complete')
    assert.equal(await store.abandonIdempotent('k-1', 'a'), false, 'abandon after complete')
    await assertBegins(store, begin('k-1', 'e'), { state: 'completed', reply: REPLY }, 'the reply is unchanged')
  },

  async 'replies are stored as given: any string, unicode and 100 KiB alike' ({ store }) {
    for (const [key, reply] of [['k-1', ''], ['k-2', '{"name":"Zoë ✓ 日本"}'], ['k-3', 'x'.repeat(100 * 1024)]] as const) {
      await assertBegins(store, begin(key, 'a'), { state: 'started' }, key)
      assert.equal(await store.completeIdempotent(key, 'a', reply, LONG_MS), true, `complete ${key}`)
      await assertBegins(store, begin(key, 'b'), { state: 'completed', reply }, `replay of ${key}`)
    }
  },

  async 'abandon forgets the key: the next begin starts afresh' ({ store }) {
    await assertBegins(store, begin('k-1', 'a'), { state: 'started' }, 'the first begin')
    assert.equal(await store.abandonIdempotent('k-1', 'a'), true, 'the attempt that began it abandons it')
    await assertBegins(store, begin('k-1', 'b', { fingerprint: 'fp-2' }), { state: 'started' }, 'a begin after abandon, any fingerprint')
    assert.equal(await store.abandonIdempotent('k-1', 'a'), false, 'abandon by the earlier attempt')
    await assertBegins(store, begin('k-1', 'c', { fingerprint: 'fp-2' }), { state: 'in-flight' }, 'the later attempt still holds it')
  },

  async 'only the attempt that began a key completes or abandons it' ({ store }) {
    await assertBegins(store, begin('k-1', 'a'), { state: 'started' }, 'the first begin')
    assert.equal(await store.completeIdempotent('k-1', 'b', REPLY, LONG_MS), false, 'complete by another attempt')
    assert.equal(await store.abandonIdempotent('k-1', 'b'), false, 'abandon by another attempt')
    await assertBegins(store, begin('k-1', 'c'), { state: 'in-flight' }, 'still in flight')
    assert.equal(await store.completeIdempotent('k-2', 'a', REPLY, LONG_MS), false, 'complete of a key never begun')
    assert.equal(await store.abandonIdempotent('k-2', 'a'), false, 'abandon of a key never begun')
    await assertBegins(store, begin('k-2', 'd'), { state: 'started' }, 'a failed complete stores nothing')
  },

  async 'keys are apart' ({ store }) {
    await assertBegins(store, begin('k-1', 'a'), { state: 'started' }, 'k-1')
    await assertBegins(store, begin('k-2', 'b', { fingerprint: 'fp-2' }), { state: 'started' }, 'k-2, another fingerprint')
    assert.equal(await store.completeIdempotent('k-1', 'a', REPLY, LONG_MS), true, 'complete k-1')
    await assertBegins(store, begin('k-2', 'c', { fingerprint: 'fp-2' }), { state: 'in-flight' }, 'k-2 still in flight')
    await assertBegins(store, begin('k-1:', 'd'), { state: 'started' }, 'a key that extends another')
  },

  async '100 parallel begins of one key: exactly one starts, the others see it in flight' ({ store }) {
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => store.beginIdempotent(begin('k-1', `attempt-${i}`))))
    const started = results.flatMap((result, i) => result.state === 'started' ? [i] : [])
    assert.equal(started.length, 1, `begins that started: ${started.length}`)
    assert.ok(results.every((result) => result.state === 'started' || result.state === 'in-flight'), 'the others are in flight')
    assert.equal(await store.completeIdempotent('k-1', `attempt-${started[0] as number}`, REPLY, LONG_MS), true, 'the one that started completes')
  },

  async 'an in-flight mark expires after pendingMs: a late complete then stores nothing' (h) {
    const { store, clock } = h
    const since = clock.now()
    await assertBegins(store, begin('k-1', 'a', { pendingMs: SHORT_MS }), { state: 'started' }, 'the first begin')
    await assertBegins(store, begin('k-2', 'b'), { state: 'started' }, 'another key, kept long')
    await assertForgotten(h, 'k-1', since, SHORT_MS, { state: 'in-flight' }, 'the in-flight mark')
    assert.equal(await store.completeIdempotent('k-1', 'a', REPLY, LONG_MS), false, 'the first attempt completes late')
    await assertBegins(store, begin('k-1', 'c'), { state: 'in-flight' }, 'the key is the later attempt\'s')
    await assertBegins(store, begin('k-2', 'd'), { state: 'in-flight' }, 'the key kept long')
  },

  async 'a completed reply is forgotten ttlMs after it was stored' (h) {
    const { store, clock } = h
    await assertBegins(store, begin('k-1', 'a'), { state: 'started' }, 'the first begin')
    const since = clock.now()
    assert.equal(await store.completeIdempotent('k-1', 'a', REPLY, SHORT_MS), true, 'complete')
    await assertBegins(store, begin('k-2', 'b'), { state: 'started' }, 'another key')
    assert.equal(await store.completeIdempotent('k-2', 'b', REPLY, LONG_MS), true, 'complete, kept long')
    await assertForgotten(h, 'k-1', since, SHORT_MS, { state: 'completed', reply: REPLY }, 'the reply')
    await assertBegins(store, begin('k-2', 'd'), { state: 'completed', reply: REPLY }, 'the reply kept long')
  }
}

/**
 * The `IdempotencyStore` contract (see `IdempotencyStore`) as a list of named cases, runner-agnostic:
 * each `run` creates a fresh store with `createStore`, checks it with `node:assert/strict` and rejects
 * on the first failure. Register them with any runner:
 *
 * ```ts
 * for (const { name, run } of idempotencyStoreContract({ createStore })) test(name, run)
 * ```
 */
export function idempotencyStoreContract<Store extends IdempotencyStore> (options: IdempotencyStoreContractOptions<Store>): IdempotencyStoreContractCase[] {
  if (typeof options?.createStore !== 'function') {
    throw new TypeError('idempotencyStoreContract: options.createStore must be a function returning a fresh, empty IdempotencyStore')
  }
  return contractCases(Object.entries(CASES), options)
}
