import assert from 'node:assert/strict'
import type { ConsumeRequest, ConsumeResult, QuotaBudgets, QuotaStore, QuotaUsage } from '../quota/quota-store.js'
import { checkJustBefore, CLOCK_SLACK_MS, contractCases, LONG_MS, POLL_MS, pollUntil, type Body, type Harness } from './contract-clock.js'
import type { MaybePromise } from '../maybe-promise.js'

export interface QuotaStoreContractOptions<Store extends QuotaStore = QuotaStore> {
  /** A fresh, empty store; called once at the start of every case. */
  createStore: () => MaybePromise<Store>
  /** Called after every case, passed or failed, with the store it used (close a client, delete keys). */
  cleanup?: ((store: Store) => MaybePromise<void>) | undefined
  /**
   * Moves the store's clock forward by `ms`, for a store whose time the caller controls (fake timers
   * faking `performance.now()` or `Date`). Without it, the expiry cases wait in real time: they poll
   * until the counts are gone, which takes about half a second per case.
   */
  advance?: ((ms: number) => MaybePromise<void>) | undefined
  /** How long past its `ttlMs` a window's counts may take to be forgotten before the case fails. Default 10 000 ms. */
  expiryTimeoutMs?: number | undefined
}

/** One case of the contract: register `run` with your test runner under `name`. */
export interface QuotaStoreContractCase {
  readonly name: string
  /** Creates a store, checks it with `node:assert/strict` (rejecting on the first failure), cleans up. */
  readonly run: () => Promise<void>
}

/** Short enough to wait for in real time, long enough to see the counts kept first. */
const TTL_MS = 300

const WINDOW = 'd2026-11-25'
const OTHER_WINDOW = 'd2026-11-26'
/** The plugin's id of a window given in milliseconds: its length, and its index since the epoch. */
const HOUR_WINDOW = 'w3600000:493'
const ZERO: QuotaUsage = { sessions: 0, seconds: 0, costMicros: 0 }

function consumeRequest (key: string, budgets: QuotaBudgets, options: { window?: string, ttlMs?: number } = {}): ConsumeRequest {
  return { key, window: options.window ?? WINDOW, ttlMs: options.ttlMs ?? LONG_MS, budgets }
}

/** The three counts of `usage`, so that a store may answer with any object that has them. */
function countsOf (usage: QuotaUsage, what: string): QuotaUsage {
  assert.ok(typeof usage === 'object' && usage !== null, `${what}: usage is an object, got ${JSON.stringify(usage)}`)
  const { sessions, seconds, costMicros } = usage
  return { sessions, seconds, costMicros }
}

function assertUsage (usage: QuotaUsage, expected: QuotaUsage, what: string): void {
  assert.deepEqual(countsOf(usage, what), expected, `${what}: usage`)
}

async function assertUsageOf (store: QuotaStore, key: string, window: string, expected: QuotaUsage, what: string): Promise<void> {
  assertUsage(await store.usage(key, window), expected, `${what} (usage of ${key} in ${window})`)
}

/** Asserts that `consume` counted the session, and returns the usage after it. */
async function consumed (store: QuotaStore, request: ConsumeRequest, what: string): Promise<QuotaUsage> {
  const result = await store.consume(request)
  if (result?.ok !== true) assert.fail(`${what}: expected the session to be counted, got ${JSON.stringify(result)}`)
  return countsOf(result.usage, what)
}

/** Asserts that `consume` refused for `budget`, and returns the usage it reported. */
async function refused (store: QuotaStore, request: ConsumeRequest, budget: Exclude<ConsumeResult, { ok: true }>['budget'], what: string): Promise<QuotaUsage> {
  const result = await store.consume(request)
  if (result?.ok !== false) assert.fail(`${what}: expected a refusal for '${budget}', got ${JSON.stringify(result)}`)
  assert.equal(result.budget, budget, `${what}: the exhausted budget`)
  return countsOf(result.usage, what)
}

function isZero (usage: QuotaUsage): boolean {
  return usage.sessions === 0 && usage.seconds === 0 && usage.costMicros === 0
}

/**
 * Asserts that counts written at `since` to be kept `ms` are still `expected`. In real time, a
 * machine so slow that `ms` has already passed cannot tell; that is no fault of the store.
 */
async function assertKept (h: Harness<QuotaStore>, key: string, since: number, ms: number, expected: QuotaUsage, what: string): Promise<void> {
  const usage = countsOf(await h.store.usage(key, WINDOW), what)
  if (isZero(usage) && h.clock.passedInRealTime(since, ms)) return
  assert.deepEqual(usage, expected, `${what}: the counts are kept`)
}

/** Asserts that counts written at `since` (a time taken before the write) to be kept `ms` are forgotten then, and not before. */
async function assertForgotten (h: Harness<QuotaStore>, key: string, since: number, ms: number, expected: QuotaUsage, what: string): Promise<void> {
  await checkJustBefore(h.clock, since, ms, async () => { await assertKept(h, key, since, ms, expected, `${what}, 1 ms before they expire`) })
  await pollUntil(h, since + ms, async () => isZero(countsOf(await h.store.usage(key, WINDOW), what)),
    `${what}: still counted ${h.expiryTimeoutMs} ms after they should have expired`)
  const elapsed = h.clock.now() - since
  assert.ok(elapsed >= ms - CLOCK_SLACK_MS, `${what}: forgotten after ${Math.round(elapsed)} ms, before their ${ms} ms`)
}

const CASES: Record<string, Body<QuotaStore>> = {
  async 'consume counts sessions up to the sessions budget, then refuses naming it, with the usage unchanged' ({ store }) {
    const request = consumeRequest('user-1', { sessions: 3 })
    for (let i = 1; i <= 3; i++) {
      assertUsage(await consumed(store, request, `consume ${i} of 3`), { ...ZERO, sessions: i }, `consume ${i} of 3`)
    }
    assertUsage(await refused(store, request, 'sessions', 'a fourth consume'), { ...ZERO, sessions: 3 }, 'a fourth consume')
    assertUsage(await refused(store, request, 'sessions', 'a fifth consume'), { ...ZERO, sessions: 3 }, 'a fifth consume')
    await assertUsageOf(store, 'user-1', WINDOW, { ...ZERO, sessions: 3 }, 'a refused consume counts nothing')
    assertUsage(await consumed(store, consumeRequest('user-1', { sessions: 4 }), 'a larger budget'), { ...ZERO, sessions: 4 }, 'a larger budget counts on')
    assertUsage(await refused(store, consumeRequest('user-2', { sessions: 0 }), 'sessions', 'a budget of 0'), ZERO, 'a budget of 0')
    await assertUsageOf(store, 'user-2', WINDOW, ZERO, 'a budget of 0 counts nothing')
  },

  async 'budgets left out are not limited' ({ store }) {
    for (let i = 1; i <= 20; i++) await consumed(store, consumeRequest('user-1', {}), `consume ${i} without budgets`)
    await store.record('user-1', WINDOW, { seconds: 1_000, costMicros: 5_000_000 }, LONG_MS)
    const undefinedBudgets = { sessions: undefined, seconds: undefined, costMicros: undefined }
    assertUsage(await consumed(store, consumeRequest('user-1', undefinedBudgets), 'budgets given as undefined'),
      { sessions: 21, seconds: 1_000, costMicros: 5_000_000 }, 'budgets given as undefined')
    await consumed(store, consumeRequest('user-1', { seconds: 1_001 }), 'only a seconds budget, not reached')
    await consumed(store, consumeRequest('user-1', { costMicros: 5_000_001 }), 'only a costMicros budget, not reached')
    await assertUsageOf(store, 'user-1', WINDOW, { sessions: 23, seconds: 1_000, costMicros: 5_000_000 }, 'after 23 consumes')
  },

  async 'the seconds and costMicros budgets refuse once record reaches them' ({ store }) {
    const seconds = consumeRequest('user-1', { seconds: 60 })
    await consumed(store, seconds, 'no seconds yet')
    await store.record('user-1', WINDOW, { seconds: 59, costMicros: 0 }, LONG_MS)
    assertUsage(await consumed(store, seconds, '59 of 60 seconds'), { sessions: 2, seconds: 59, costMicros: 0 }, '59 of 60 seconds')
    await store.record('user-1', WINDOW, { seconds: 1, costMicros: 0 }, LONG_MS)
    assertUsage(await refused(store, seconds, 'seconds', '60 of 60 seconds'), { sessions: 2, seconds: 60, costMicros: 0 }, '60 of 60 seconds')

    const cost = consumeRequest('user-2', { costMicros: 1_000_000 })
    await store.record('user-2', WINDOW, { seconds: 0, costMicros: 999_999 }, LONG_MS)
    assertUsage(await consumed(store, cost, 'just below the cost budget'), { sessions: 1, seconds: 0, costMicros: 999_999 }, 'just below the cost budget')
    await store.record('user-2', WINDOW, { seconds: 0, costMicros: 1 }, LONG_MS)
    assertUsage(await refused(store, cost, 'costMicros', 'the cost budget reached'), { sessions: 1, seconds: 0, costMicros: 1_000_000 }, 'the cost budget reached')
    await store.record('user-2', WINDOW, { seconds: 0, costMicros: 5 }, LONG_MS)
    await refused(store, cost, 'costMicros', 'the cost budget passed')
  },

  async 'the first exhausted budget is named, in the order sessions, seconds, costMicros' ({ store }) {
    await store.record('user-1', WINDOW, { seconds: 100, costMicros: 100 }, LONG_MS)
    await consumed(store, consumeRequest('user-1', { sessions: 1 }), 'the first session')
    await refused(store, consumeRequest('user-1', { sessions: 1, seconds: 100, costMicros: 100 }), 'sessions', 'all three exhausted')
    await refused(store, consumeRequest('user-1', { sessions: 2, seconds: 100, costMicros: 100 }), 'seconds', 'seconds and costMicros exhausted')
    await refused(store, consumeRequest('user-1', { seconds: 100, costMicros: 100 }), 'seconds', 'seconds and costMicros exhausted, sessions not limited')
    await refused(store, consumeRequest('user-1', { sessions: 2, seconds: 101, costMicros: 100 }), 'costMicros', 'only costMicros exhausted')
    assertUsage(await consumed(store, consumeRequest('user-1', { sessions: 2, seconds: 101, costMicros: 101 }), 'none exhausted'),
      { sessions: 2, seconds: 100, costMicros: 100 }, 'none exhausted')
  },

  async 'refund gives one session back, never below zero, and leaves seconds and cost alone' ({ store }) {
    await store.refund('user-1', WINDOW)
    await assertUsageOf(store, 'user-1', WINDOW, ZERO, 'a refund of nothing')
    const request = consumeRequest('user-1', { sessions: 2 })
    await consumed(store, request, 'consume 1 of 2')
    await consumed(store, request, 'consume 2 of 2')
    await refused(store, request, 'sessions', 'a third consume')
    await store.record('user-1', WINDOW, { seconds: 30, costMicros: 40 }, LONG_MS)
    await store.refund('user-1', WINDOW)
    await assertUsageOf(store, 'user-1', WINDOW, { sessions: 1, seconds: 30, costMicros: 40 }, 'after a refund')
    assertUsage(await consumed(store, request, 'the refunded session'), { sessions: 2, seconds: 30, costMicros: 40 }, 'the refund freed one session')
    for (let i = 0; i < 3; i++) await store.refund('user-1', WINDOW)
    await assertUsageOf(store, 'user-1', WINDOW, { sessions: 0, seconds: 30, costMicros: 40 }, 'three refunds of two sessions')
    assertUsage(await consumed(store, request, 'after too many refunds'), { sessions: 1, seconds: 30, costMicros: 40 }, 'never below zero')
    await store.refund('user-1', OTHER_WINDOW)
    await store.refund('user-2', WINDOW)
    await assertUsageOf(store, 'user-1', WINDOW, { sessions: 1, seconds: 30, costMicros: 40 }, 'refunds of another window and key')
  },

  async 'keys and windows are counted apart' ({ store }) {
    const once = { sessions: 1 }
    await consumed(store, consumeRequest('user:1', once), 'user:1')
    await consumed(store, consumeRequest('user', once), 'user, not held back by user:1')
    await consumed(store, consumeRequest('user:1', once, { window: OTHER_WINDOW }), 'user:1 in another window')
    await consumed(store, consumeRequest('ip 10.0.0.1 🙂', once), 'a key with spaces and emoji')
    await consumed(store, consumeRequest('user:1', once, { window: HOUR_WINDOW }), 'user:1 in a window of a given length')
    await store.record('user:1', OTHER_WINDOW, { seconds: 10, costMicros: 20 }, LONG_MS)
    await store.refund('user', WINDOW)
    await assertUsageOf(store, 'user:1', WINDOW, { ...ZERO, sessions: 1 }, 'user:1')
    await assertUsageOf(store, 'user', WINDOW, ZERO, 'user, refunded')
    await assertUsageOf(store, 'user:1', OTHER_WINDOW, { sessions: 1, seconds: 10, costMicros: 20 }, 'user:1 in the other window')
    await assertUsageOf(store, 'ip 10.0.0.1 🙂', WINDOW, { ...ZERO, sessions: 1 }, 'the key with spaces and emoji')
    await assertUsageOf(store, 'user:1', HOUR_WINDOW, { ...ZERO, sessions: 1 }, 'user:1 in the window of a given length')
    await refused(store, consumeRequest('user:1', once), 'sessions', 'user:1 is still full')
  },

  async 'usage of an unknown key or window is zeros' ({ store }) {
    await assertUsageOf(store, 'user-1', WINDOW, ZERO, 'a fresh store')
    await consumed(store, consumeRequest('user-1', {}), 'user-1')
    await assertUsageOf(store, 'user-2', WINDOW, ZERO, 'another key')
    await assertUsageOf(store, 'user-1', OTHER_WINDOW, ZERO, 'another window')
  },

  async '100 parallel consumes with a sessions budget of 7: exactly 7 are counted' ({ store }) {
    const request = consumeRequest('user-1', { sessions: 7 })
    const results = await Promise.all(Array.from({ length: 100 }, async () => await store.consume(request)))
    const counted = results.flatMap((result) => result.ok ? [countsOf(result.usage, 'a counted consume').sessions] : [])
    assert.deepEqual(counted.sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7], 'the usage each counted consume saw')
    for (const result of results.filter((result) => !result.ok)) {
      assert.equal((result as Exclude<ConsumeResult, { ok: true }>).budget, 'sessions', 'a refused consume: the exhausted budget')
      assertUsage(result.usage, { ...ZERO, sessions: 7 }, 'a refused consume')
    }
    await assertUsageOf(store, 'user-1', WINDOW, { ...ZERO, sessions: 7 }, 'after the parallel consumes')
  },

  async 'record adds seconds and cost, and usage shows them' ({ store }) {
    await store.record('user-1', WINDOW, { seconds: 30, costMicros: 1_500 }, LONG_MS)
    await assertUsageOf(store, 'user-1', WINDOW, { sessions: 0, seconds: 30, costMicros: 1_500 }, 'a record without a session counted')
    await store.record('user-1', WINDOW, { seconds: 45, costMicros: 2_500 }, LONG_MS)
    await assertUsageOf(store, 'user-1', WINDOW, { sessions: 0, seconds: 75, costMicros: 4_000 }, 'a second record adds to the first')
    assertUsage(await consumed(store, consumeRequest('user-1', {}), 'consume'), { sessions: 1, seconds: 75, costMicros: 4_000 }, 'consume after record')
    await store.record('user-1', WINDOW, { seconds: 0, costMicros: 0 }, LONG_MS)
    await assertUsageOf(store, 'user-1', WINDOW, { sessions: 1, seconds: 75, costMicros: 4_000 }, 'a record of zeros')
  },

  async 'sums stay exact integers: 100 parallel records, and amounts near 2^53' ({ store }) {
    await Promise.all(Array.from({ length: 100 }, async () => { await store.record('user-1', WINDOW, { seconds: 7, costMicros: 100_000 }, LONG_MS) }))
    await assertUsageOf(store, 'user-1', WINDOW, { sessions: 0, seconds: 700, costMicros: 10_000_000 }, '100 records of 7 s and $0.10')
    for (const costMicros of [4_000_000_000_000_000, 4_000_000_000_000_000, 1]) {
      await store.record('user-2', WINDOW, { seconds: 1, costMicros }, LONG_MS)
    }
    await assertUsageOf(store, 'user-2', WINDOW, { sessions: 0, seconds: 3, costMicros: 8_000_000_000_000_001 }, 'large amounts')
  },

  async 'a window\'s counts are forgotten ttlMs after they were counted' (h) {
    const { store, clock } = h
    const since = clock.now()
    await consumed(store, consumeRequest('user-1', { sessions: 1 }, { ttlMs: TTL_MS }), 'consume')
    await store.record('user-1', WINDOW, { seconds: 10, costMicros: 20 }, TTL_MS)
    await consumed(store, consumeRequest('user-2', {}, { ttlMs: LONG_MS }), 'another key, kept long')
    const counts = { sessions: 1, seconds: 10, costMicros: 20 }
    await assertKept(h, 'user-1', since, TTL_MS, counts, 'right after consume and record')
    await assertForgotten(h, 'user-1', since, TTL_MS, counts, 'the window\'s counts')
    assertUsage(await consumed(store, consumeRequest('user-1', { sessions: 1 }), 'consume after expiry'), { ...ZERO, sessions: 1 }, 'counting starts afresh')
    await assertUsageOf(store, 'user-2', WINDOW, { ...ZERO, sessions: 1 }, 'the key kept long')
  },

  async 'a refund does not keep the counts longer' (h) {
    const { store, clock } = h
    const since = clock.now()
    await consumed(store, consumeRequest('user-1', {}, { ttlMs: TTL_MS }), 'consume 1')
    await consumed(store, consumeRequest('user-1', {}, { ttlMs: TTL_MS }), 'consume 2')
    await clock.pass(TTL_MS / 2)
    await store.refund('user-1', WINDOW)
    await assertForgotten(h, 'user-1', since, TTL_MS, { ...ZERO, sessions: 1 }, 'the counts, refunded halfway')
  },

  async 'a longer ttlMs keeps the counts longer; a later, shorter one does not shorten it' (h) {
    const { store, clock } = h
    const since = clock.now()
    await consumed(store, consumeRequest('user-1', {}, { ttlMs: TTL_MS }), 'consume')
    const extended = clock.now()
    await store.record('user-1', WINDOW, { seconds: 10, costMicros: 20 }, 2 * TTL_MS)
    await consumed(store, consumeRequest('user-1', {}, { ttlMs: 1 }), 'consume with a ttlMs of 1')
    await store.record('user-1', WINDOW, { seconds: 1, costMicros: 1 }, 1)
    const counts = { sessions: 2, seconds: 11, costMicros: 21 }
    await clock.passUntil(since + TTL_MS + POLL_MS)
    await assertKept(h, 'user-1', extended, 2 * TTL_MS, counts, `past the first ttlMs (${TTL_MS} ms)`)
    await assertForgotten(h, 'user-1', extended, 2 * TTL_MS, counts, 'the counts kept longer')
  }
}

/**
 * The `QuotaStore` contract (see `QuotaStore`) as a list of named cases, runner-agnostic: each
 * `run` creates a fresh store with `createStore`, checks it with `node:assert/strict` and rejects
 * on the first failure. Register them with any runner:
 *
 * ```ts
 * for (const { name, run } of quotaStoreContract({ createStore })) test(name, run)
 * ```
 */
export function quotaStoreContract<Store extends QuotaStore> (options: QuotaStoreContractOptions<Store>): QuotaStoreContractCase[] {
  if (typeof options?.createStore !== 'function') {
    throw new TypeError('quotaStoreContract: options.createStore must be a function returning a fresh, empty QuotaStore')
  }
  return contractCases(Object.entries(CASES), options)
}
