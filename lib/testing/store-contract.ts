import assert from 'node:assert/strict'
import { TRACKING_METHODS, type AcquireResult, type ClaimResult, type SessionStore, type SlotRequest, type TrackedSession, type TrackingSessionStore } from '../limits/store.js'
import { checkJustBefore, CLOCK_SLACK_MS, contractCases, LONG_MS, POLL_MS, pollUntil, type Body, type Harness } from './contract-clock.js'
import type { MaybePromise } from '../maybe-promise.js'

export interface SessionStoreContractOptions<Store extends SessionStore = SessionStore> {
  /** A fresh, empty store; called once at the start of every case. */
  createStore: () => MaybePromise<Store>
  /** Called after every case, passed or failed, with the store it used (close a client, delete keys). */
  cleanup?: ((store: Store) => MaybePromise<void>) | undefined
  /**
   * Moves the store's clock forward by `ms`, for a store whose time the caller controls (fake timers
   * faking `performance.now()` or `Date`). Without it, the expiry cases wait in real time: they poll
   * until the slot frees, which takes about half a second per case.
   */
  advance?: ((ms: number) => MaybePromise<void>) | undefined
  /**
   * How long past its `pendingMs` or `holdMs` a slot may take to free, and a tracked session to become
   * due after its `firstCheckMs`, `delayMs` or lease, before the case fails. Default 10 000 ms.
   */
  expiryTimeoutMs?: number | undefined
  /**
   * The session tracking cases (named `tracking: ...`): `true` runs them, and a store without the
   * tracking methods fails them; `false` leaves them out of the list. By default each one checks the
   * store it creates: with none of `TRACKING_METHODS` it passes without checking anything (the store
   * cannot back tracking, and says so by having none of them); with some but not all, it fails, as the
   * plugin refuses such a store.
   */
  tracking?: boolean | undefined
}

/** One case of the contract: register `run` with your test runner under `name`. */
export interface SessionStoreContractCase {
  readonly name: string
  /** Creates a store, checks it with `node:assert/strict` (rejecting on the first failure), cleans up. */
  readonly run: () => Promise<void>
}

/** Short enough to wait for in real time, long enough to see the slot held first. */
const PENDING_MS = 300
const HOLD_MS = 400

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
async function assertHeld (h: Harness<SessionStore>, slotRequest: SlotRequest, scope: 'key' | 'global', since: number, ms: number, what: string): Promise<void> {
  const result = await probe(h.store, slotRequest)
  if (result.ok && h.clock.passedInRealTime(since, ms)) return
  refusedWithin(result, scope, ms, what)
}

/** Asserts that the slot taken (or bound) at `since` to live `ms` frees then, and not before. */
async function assertExpires (h: Harness<SessionStore>, slotRequest: SlotRequest, scope: 'key' | 'global', since: number, ms: number, what: string): Promise<void> {
  await checkJustBefore(h.clock, since, ms, async () => { await assertHeld(h, slotRequest, scope, since, ms, `${what}, 1 ms before it expires`) })
  // The deadline counts from when the wait starts.
  await pollUntil(h, h.clock.now(), async () => (await probe(h.store, slotRequest)).ok,
    `${what}: still held ${h.expiryTimeoutMs} ms after it should have expired`)
  const elapsed = h.clock.now() - since
  assert.ok(elapsed >= ms - CLOCK_SLACK_MS, `${what}: freed after ${Math.round(elapsed)} ms, before its ${ms} ms`)
}

const CASES: Record<string, Body<SessionStore>> = {
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
  },

  async 'a session bound to a second slot leaves the first, which stays held until it is released by id' ({ store }) {
    const first = request('ip-1', { concurrency: 1 })
    const second = request('ip-2', { concurrency: 1 })
    const firstSlot = await slotOf(store, first)
    assert.equal(await store.bind(firstSlot, 'sess-1', LONG_MS), true, 'bind the first slot')
    assert.equal(await store.bind(await slotOf(store, second), 'sess-1', LONG_MS), true, 'bind the same session to a second slot')
    assert.equal(await store.releaseSession('sess-1', 'ip-1'), false, 'the first slot\'s key no longer holds the session')
    assert.equal(await store.releaseSession('sess-1'), true, 'releaseSession frees the second slot')
    await assertFree(store, second, 'the second slot')
    assert.equal(await store.releaseSession('sess-1'), false, 'a second releaseSession frees nothing')
    refusedWithin(await store.acquire(first), 'key', LONG_MS, 'the first slot is still held')
    await store.release(firstSlot)
    await assertFree(store, first, 'the first slot, released by id')
  },

  async 'sessionState (optional): a bound session has its slot\'s key; a pending, freed or unknown one is undefined' ({ store }) {
    if (store.sessionState === undefined) return
    const key = request('ip-1')
    assert.equal(await store.bind(await slotOf(store, key), 'sess-1', LONG_MS), true, 'bind sess-1')
    assert.equal(await store.bind(await slotOf(store, key), 'sess-2', LONG_MS), true, 'bind sess-2')
    await slotOf(store, key, 'a pending slot')
    assert.deepEqual(await store.sessionState('sess-1'), { key: 'ip-1', ended: false }, 'a bound session')
    assert.equal(await store.sessionState('sess-unknown'), undefined, 'an unknown session')
    assert.equal(await store.releaseSession('sess-1'), true, 'releaseSession')
    assert.equal(await store.sessionState('sess-1'), undefined, 'a released session')
    assert.deepEqual(await store.sessionState('sess-2'), { key: 'ip-1', ended: false }, 'the other session is still bound')
  }
}

// Session tracking (see `TrackingStore`).

/** Short enough to wait for in real time, long enough to see the session not due first. */
const FIRST_CHECK_MS = 300
const LEASE_MS = 300
const DELAY_MS = 300
const OWNER_A = 'tracker-a'
const OWNER_B = 'tracker-b'

type TrackingHarness = Harness<TrackingSessionStore>

type TrackingBody = Body<TrackingSessionStore>

/** The tracking methods `store` has; the store can back tracking when it has all of them. */
function trackingMethodsOf (store: SessionStore): string[] {
  return TRACKING_METHODS.filter((method) => typeof (store as Partial<TrackingSessionStore>)[method] === 'function')
}

async function claim (store: TrackingSessionStore, owner: string, leaseMs = LONG_MS, limit = 10): Promise<ClaimResult> {
  const result = await store.claimDue({ owner, leaseMs, limit })
  assert.ok(Array.isArray(result?.sessions), `claimDue for ${owner}: sessions is an array, got ${JSON.stringify(result)}`)
  return result
}

function idsOf (sessions: readonly TrackedSession[]): string[] {
  return sessions.map((session) => session.sessionId)
}

/** The one session `sessions` holds, asserted to be `sessionId`. */
function onlySession (sessions: readonly TrackedSession[], sessionId: string, what: string): TrackedSession {
  assert.deepEqual(idsOf(sessions), [sessionId], `${what}: claimed sessions`)
  return sessions[0] as TrackedSession
}

/** Asserts what a claimed entry says about its session (`ageMs` is checked where it is known; `quotaKey` is undefined unless given). */
function assertEntry (session: TrackedSession, expected: Omit<TrackedSession, 'ageMs' | 'quotaKey'> & { quotaKey?: string }, what: string): void {
  const { ageMs, ...rest } = session
  assert.deepEqual(rest, { quotaKey: undefined, ...expected }, `${what}: the claimed entry`)
  assert.ok(typeof ageMs === 'number' && ageMs >= 0, `${what}: ageMs ${ageMs} is a number, not negative`)
}

async function assertNothingDue (store: TrackingSessionStore, owner: string, what: string): Promise<ClaimResult> {
  const result = await claim(store, owner)
  assert.deepEqual(idsOf(result.sessions), [], `${what}: nothing is due`)
  return result
}

/** Asserts that `nextDueMs` says an entry becomes due `ms` after `since` (a time taken before it was scheduled). */
function assertNextDue (h: Harness<SessionStore>, result: ClaimResult, since: number, ms: number, what: string): void {
  const next = result.nextDueMs
  assert.equal(typeof next, 'number', `${what}: nextDueMs is a number, got ${next}`)
  const least = ms - (h.clock.now() - since) - h.clock.slackMs
  assert.ok((next as number) <= ms && (next as number) >= Math.max(0, least), `${what}: nextDueMs ${next} is in [${Math.max(0, Math.ceil(least))}, ${ms}]`)
}

/** Lets time pass until an entry scheduled (before `after`) to be due `ms` later is due by any clock. */
async function passUntilDue (h: Harness<SessionStore>, after: number, ms: number): Promise<void> {
  const until = after + ms + h.clock.slackMs
  while (h.clock.now() < until) await h.clock.pass(Math.max(1, until - h.clock.now()))
}

/**
 * Claims for `owner`, polling, until something is claimed, and asserts that it was not due before
 * `ms` after `since` (a time taken before the entry was tracked, rescheduled or leased). With the
 * caller's clock, it first checks that nothing is due 1 ms before. Returns what was claimed.
 */
async function claimOnceDue (h: TrackingHarness, owner: string, since: number, ms: number, what: string, leaseMs = LONG_MS): Promise<TrackedSession[]> {
  await checkJustBefore(h.clock, since, ms, async () => {
    assert.deepEqual(idsOf((await claim(h.store, owner, leaseMs)).sessions), [], `${what}: claimed 1 ms before it is due`)
  })
  let sessions: TrackedSession[] = []
  await pollUntil(h, since + ms, async () => (sessions = (await claim(h.store, owner, leaseMs)).sessions).length > 0,
    `${what}: not due ${h.expiryTimeoutMs} ms after it should have been`)
  const elapsed = h.clock.now() - since
  assert.ok(elapsed >= ms - h.clock.slackMs, `${what}: claimed after ${Math.round(elapsed)} ms, before its ${ms} ms`)
  return sessions
}

/** Acquires a slot for `slotRequest` and binds it to `sessionId` for `LONG_MS`, tracked, due `firstCheckMs` from now. */
async function bindTracked (store: TrackingSessionStore, sessionId: string, slotRequest: SlotRequest, firstCheckMs = 0): Promise<void> {
  const slotId = await slotOf(store, slotRequest, `acquire for ${sessionId}`)
  assert.equal(await store.bind(slotId, sessionId, LONG_MS, { firstCheckMs }), true, `bind ${sessionId} with track`)
}

/** Asserts that nothing is tracked any more: nothing to claim, nothing due later. */
async function assertNothingTracked (store: TrackingSessionStore, what: string): Promise<void> {
  const result = await assertNothingDue(store, OWNER_B, what)
  assert.equal(result.nextDueMs, undefined, `${what}: nextDueMs, with nothing tracked`)
}

const TRACKING_CASES: Record<string, TrackingBody> = {
  async 'tracking: sessionState (optional) knows a tracked session until it is untracked, and whether it ended' ({ store }) {
    if (store.sessionState === undefined) return
    const key = request('ip-1')
    await bindTracked(store, 'sess-1', key, LONG_MS)
    await store.track('sess-no-slot', { firstCheckMs: LONG_MS })
    await store.track('sess-quota', { firstCheckMs: LONG_MS, key: 'org-1' })
    assert.deepEqual(await store.sessionState('sess-1'), { key: 'ip-1', ended: false }, 'bound and tracked')
    assert.deepEqual(await store.sessionState('sess-no-slot'), { key: undefined, ended: false }, 'tracked without a slot or key')
    assert.deepEqual(await store.sessionState('sess-quota'), { key: 'org-1', ended: false }, 'tracked under a key without a slot')
    assert.equal(await store.releaseSession('sess-1'), true, 'releaseSession')
    assert.deepEqual(await store.sessionState('sess-1'), { key: 'ip-1', ended: false }, 'released: still tracked, its key kept')
    assert.equal(await store.markEnded('sess-1'), true, 'markEnded')
    assert.deepEqual(await store.sessionState('sess-1'), { key: 'ip-1', ended: true }, 'ended')
    assert.equal(await store.untrack('sess-1'), true, 'untrack')
    assert.equal(await store.sessionState('sess-1'), undefined, 'untracked')
  },

  async 'tracking: bind with track holds the slot and makes the session due after firstCheckMs, not before' (h) {
    const { store, clock } = h
    const key = request('ip-1', { concurrency: 1 })
    const slotId = await slotOf(store, key)
    const since = clock.now()
    assert.equal(await store.bind(slotId, 'sess-1', LONG_MS, { firstCheckMs: FIRST_CHECK_MS }), true, 'bind with track')
    refusedWithin(await store.acquire(key), 'key', LONG_MS, 'the tracked session holds its slot')
    const [session] = await claimOnceDue(h, OWNER_A, since, FIRST_CHECK_MS, 'the tracked session')
    const elapsed = clock.now() - since
    assertEntry(onlySession([session as TrackedSession], 'sess-1', 'after firstCheckMs'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 0, ended: false, deliveries: 0 }, 'first claim')
    const { ageMs } = session as TrackedSession
    const slack = clock.slackMs
    assert.ok(ageMs >= FIRST_CHECK_MS - slack && ageMs <= elapsed + slack, `ageMs ${ageMs} counts from the bind: in [${FIRST_CHECK_MS}, ${Math.round(elapsed)}]`)
    refusedWithin(await store.acquire(key), 'key', LONG_MS, 'claiming keeps the slot held')
    await assertNothingDue(store, OWNER_B, 'leased to owner A')
  },

  async 'tracking: bind without track, or a bind that fails, tracks nothing' ({ store }) {
    assert.equal(await store.bind(await slotOf(store, request('ip-1')), 'sess-untracked', LONG_MS), true, 'bind without track')
    const late = await slotOf(store, request('ip-2'))
    await store.release(late)
    assert.equal(await store.bind(late, 'sess-late', LONG_MS, { firstCheckMs: 0 }), false, 'a late bind with track')
    assert.equal(await store.bind('no-such-slot', 'sess-unknown', LONG_MS, { firstCheckMs: 0 }), false, 'a bind of an unknown id with track')
    await bindTracked(store, 'sess-1', request('ip-3'))
    assert.deepEqual(idsOf((await claim(store, OWNER_A)).sessions), ['sess-1'], 'only the session bound with track is due')
    assert.deepEqual(await store.sessionsOf('ip-1'), [], 'the untracked session is not listed')
    assert.equal(await store.markEnded('sess-untracked'), false, 'markEnded of the untracked session')
    assert.equal(await store.untrack('sess-late'), false, 'untrack of the late-bound session')
    await assertFree(store, request('ip-2', { concurrency: 1 }), 'the late bind brought no slot back')
  },

  async 'tracking: a claim leases its entries: no other owner claims them until the lease ends, then one takes them over' (h) {
    const { store, clock } = h
    await bindTracked(store, 'sess-1', request('ip-1'))
    const since = clock.now()
    const { sessions } = await claim(store, OWNER_A, LEASE_MS)
    assertEntry(onlySession(sessions, 'sess-1', 'owner A'), { sessionId: 'sess-1', key: 'ip-1', checks: 0, ended: false, deliveries: 0 }, 'owner A')
    const [taken] = await claimOnceDue(h, OWNER_B, since, LEASE_MS, 'the leased entry, for owner B')
    assertEntry(onlySession([taken as TrackedSession], 'sess-1', 'owner B after the lease'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 0, ended: false, deliveries: 0 }, 'owner B takes it over')
    await assertNothingDue(store, OWNER_A, 'owner B leased it: owner A')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0 }), false, 'owner A\'s reschedule after the takeover')
    assert.equal(await store.untrack('sess-1', OWNER_A), false, 'owner A\'s untrack after the takeover')
    assert.equal(await store.reschedule('sess-1', OWNER_B, { delayMs: 0, checks: 1 }), true, 'owner B\'s reschedule')
    assertEntry(onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'owner A claims it again'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 1, ended: false, deliveries: 0 }, 'owner A, after owner B rescheduled')
  },

  async 'tracking: claimDue claims at most limit entries, earliest due first' (h) {
    const { store, clock } = h
    const firstChecks: Record<string, number> = { 'sess-500': 500, 'sess-100': 100, 'sess-300': 300, 'sess-400': 400, 'sess-200': 200 }
    await Promise.all(Object.entries(firstChecks).map(async ([sessionId, firstCheckMs], i) => {
      if (i % 2 === 0) await store.track(sessionId, { firstCheckMs })
      else await bindTracked(store, sessionId, request(`ip-${i}`), firstCheckMs)
    }))
    await passUntilDue(h, clock.now(), 500)
    const since = clock.now()
    const first = await claim(store, OWNER_A, LONG_MS, 2)
    assert.deepEqual(idsOf(first.sessions), ['sess-100', 'sess-200'], 'limit 2: the two due first')
    assert.equal(first.nextDueMs, 0, 'nextDueMs: the next entry is due already')
    assert.deepEqual(idsOf((await claim(store, OWNER_B, LONG_MS, 2)).sessions), ['sess-300', 'sess-400'], 'limit 2 again: the next two')
    const last = await claim(store, OWNER_A, LONG_MS, 10)
    assert.deepEqual(idsOf(last.sessions), ['sess-500'], 'limit 10: the one left')
    assertNextDue(h, last, since, LONG_MS, 'all leased: the first lease to end')
  },

  async 'tracking: nextDueMs is the time until the next entry not claimed is due, undefined when nothing is' (h) {
    const { store, clock } = h
    await assertNothingTracked(store, 'a fresh store')
    const since = clock.now()
    await store.track('sess-later', { firstCheckMs: LONG_MS })
    await bindTracked(store, 'sess-now', request('ip-1'))
    const first = await claim(store, OWNER_A, 20_000)
    onlySession(first.sessions, 'sess-now', 'the due entry')
    assertNextDue(h, first, since, LONG_MS, 'the one not claimed')
    const second = await assertNothingDue(store, OWNER_B, 'another owner')
    assertNextDue(h, second, since, 20_000, 'a leased entry is due when its lease ends')
    assert.equal(await store.untrack('sess-now'), true, 'untrack the leased entry')
    assertNextDue(h, await assertNothingDue(store, OWNER_B, 'after untrack'), since, LONG_MS, 'the entry left')

    await Promise.all([store.track('sess-x', { firstCheckMs: 0 }), store.track('sess-y', { firstCheckMs: 0 })])
    const one = await claim(store, OWNER_A, LONG_MS, 1)
    assert.equal(one.sessions.length, 1, 'limit 1 of two due entries')
    assert.equal(one.nextDueMs, 0, 'nextDueMs: the other is due already')
  },

  async 'tracking: the owner reschedules an entry: due again after delayMs, with checks and deliveries set' (h) {
    const { store, clock } = h
    await bindTracked(store, 'sess-1', request('ip-1'))
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'claim')
    const since = clock.now()
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: DELAY_MS, checks: 1 }), true, 'the owner reschedules')
    assertNextDue(h, await assertNothingDue(store, OWNER_B, 'right after reschedule'), since, DELAY_MS, 'the rescheduled entry')
    const [again] = await claimOnceDue(h, OWNER_B, since, DELAY_MS, 'the rescheduled entry')
    assertEntry(onlySession([again as TrackedSession], 'sess-1', 'after delayMs'), { sessionId: 'sess-1', key: 'ip-1', checks: 1, ended: false, deliveries: 0 }, 'checks set')
    assert.equal(await store.reschedule('sess-1', OWNER_B, { delayMs: 0, deliveries: 2 }), true, 'owner B reschedules, due at once')
    assertEntry(onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'due at once'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 1, ended: false, deliveries: 2 }, 'deliveries set, checks kept')
    refusedWithin(await store.acquire(request('ip-1', { concurrency: 1 })), 'key', LONG_MS, 'rescheduling keeps the slot held')
  },

  async 'tracking: only the owner, the tracker that claimed the entry last, reschedules it' ({ store }) {
    await bindTracked(store, 'sess-1', request('ip-1'))
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0 }), false, 'an entry not claimed yet')
    assert.equal(await store.reschedule('sess-unknown', OWNER_A, { delayMs: 0 }), false, 'an unknown session')
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'claim')
    assert.equal(await store.reschedule('sess-1', OWNER_B, { delayMs: 0, ended: true, checks: 5 }), false, 'another owner')
    await assertNothingDue(store, OWNER_B, 'a refused reschedule changes nothing: still leased')
    refusedWithin(await store.acquire(request('ip-1', { concurrency: 1 })), 'key', LONG_MS, 'a refused reschedule frees no slot')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: LONG_MS }), true, 'the owner')
    assert.equal(await store.reschedule('sess-1', OWNER_B, { delayMs: 0 }), false, 'another owner, once the lease is released')
    await assertNothingDue(store, OWNER_B, 'the refused reschedule did not make it due')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0, checks: 1 }), true, 'the owner again: it owns the entry until another claims it')
    assertEntry(onlySession((await claim(store, OWNER_B)).sessions, 'sess-1', 'owner B claims it'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 1, ended: false, deliveries: 0 }, 'owner B')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0 }), false, 'owner A, once owner B claimed it')
    assert.equal(await store.untrack('sess-1', OWNER_A), false, 'untrack by owner A, once owner B claimed it')
    assert.equal(await store.untrack('sess-1', OWNER_B), true, 'untrack by owner B')
  },

  async 'tracking: reschedule with ended frees the slot at once; the entry stays, claimable with ended true' ({ store }) {
    const key = request('ip-1', { concurrency: 1 })
    await bindTracked(store, 'sess-1', key)
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'claim')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0, ended: true, checks: 3 }), true, 'reschedule with ended')
    await assertFree(store, key, 'the ended session\'s slot')
    assert.deepEqual(await store.sessionsOf('ip-1'), [], 'the key holds no tracked session')
    assert.equal(await store.releaseSession('sess-1'), false, 'the ended session holds no slot')
    assertEntry(onlySession((await claim(store, OWNER_B)).sessions, 'sess-1', 'the ended entry'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 3, ended: true, deliveries: 0 }, 'ended, with the key that held its slot')
    assert.equal(await store.reschedule('sess-1', OWNER_B, { delayMs: 0, deliveries: 1 }), true, 'a failed delivery')
    assertEntry(onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'after the failed delivery'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 3, ended: true, deliveries: 1 }, 'still ended')
    assert.equal(await store.untrack('sess-1', OWNER_A), true, 'delivered')
    await assertNothingTracked(store, 'after untrack')
  },

  async 'tracking: the owner ends an entry, delivers it and untracks it; markEnded meanwhile changes nothing' ({ store }) {
    const key = request('ip-1', { concurrency: 1 })
    await bindTracked(store, 'sess-1', key)
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'claim')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: LONG_MS, ended: true }), true, 'reschedule with ended, for the delivery')
    await assertFree(store, key, 'the ended session\'s slot')
    assert.equal(await store.markEnded('sess-1'), true, 'markEnded of the ended entry')
    await assertNothingDue(store, OWNER_B, 'markEnded leaves an ended entry as it is: no second delivery')
    assert.equal(await store.untrack('sess-1', OWNER_B), false, 'untrack by another owner')
    assert.equal(await store.untrack('sess-1', OWNER_A), true, 'the owner untracks it once delivered')
    await assertNothingTracked(store, 'after untrack')
  },

  async 'tracking: untrack removes the entry and frees its slot; with an owner, only by the tracker that claimed it last' ({ store }) {
    const first = request('ip-1', { concurrency: 1 })
    const second = request('ip-2', { concurrency: 1 })
    await bindTracked(store, 'sess-1', first, LONG_MS)
    await bindTracked(store, 'sess-2', second)
    assert.equal(await store.untrack('sess-1'), true, 'untrack without an owner, not claimed')
    await assertFree(store, first, 'the untracked session\'s slot')
    assert.equal(await store.untrack('sess-1'), false, 'untrack again')
    assert.equal(await store.untrack('sess-unknown'), false, 'untrack an unknown session')

    assert.equal(await store.untrack('sess-2', OWNER_A), false, 'untrack with an owner, not claimed')
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-2', 'claim')
    assert.equal(await store.untrack('sess-2', OWNER_B), false, 'untrack by another owner')
    refusedWithin(await store.acquire(second), 'key', LONG_MS, 'a refused untrack frees no slot')
    assert.deepEqual(await store.sessionsOf('ip-2'), ['sess-2'], 'a refused untrack keeps tracking')
    assert.equal(await store.untrack('sess-2', OWNER_A), true, 'untrack by the owner')
    await assertFree(store, second, 'the untracked session\'s slot')
    assert.equal(await store.releaseSession('sess-2'), false, 'untrack freed the slot with its session')
    await assertNothingTracked(store, 'after untrack')
  },

  async 'tracking: markEnded frees the slot, marks the session ended and makes it due now unless leased' (h) {
    const { store, clock } = h
    const key = request('ip-1', { concurrency: 1 })
    await bindTracked(store, 'sess-1', key, LONG_MS)
    assert.equal(await store.markEnded('sess-1'), true, 'markEnded')
    await assertFree(store, key, 'the ended session\'s slot')
    assertEntry(onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'due now, not after firstCheckMs'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 0, ended: true, deliveries: 0 }, 'marked ended')
    assert.equal(await store.markEnded('sess-unknown'), false, 'an unknown session')
    assert.equal(await store.untrack('sess-1', OWNER_A), true, 'untrack')

    await bindTracked(store, 'sess-2', key)
    const since = clock.now()
    onlySession((await claim(store, OWNER_A, 20_000)).sessions, 'sess-2', 'claim')
    assert.equal(await store.markEnded('sess-2'), true, 'markEnded while leased')
    await assertFree(store, key, 'the leased session\'s slot')
    assertNextDue(h, await assertNothingDue(store, OWNER_B, 'a leased entry stays leased'), since, 20_000, 'due when its lease ends')
    assert.equal(await store.reschedule('sess-2', OWNER_A, { delayMs: 0 }), true, 'the owner reschedules it')
    assertEntry(onlySession((await claim(store, OWNER_B)).sessions, 'sess-2', 'after the reschedule'),
      { sessionId: 'sess-2', key: 'ip-1', checks: 0, ended: true, deliveries: 0 }, 'a reschedule without ended keeps it ended')
    assert.equal(await store.untrack('sess-2', OWNER_B), true, 'untrack')

    await bindTracked(store, 'sess-3', key)
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-3', 'claim')
    assert.equal(await store.reschedule('sess-3', OWNER_A, { delayMs: LONG_MS, checks: 1 }), true, 'still running: the owner reschedules it')
    assert.equal(await store.markEnded('sess-3'), true, 'markEnded of a rescheduled entry')
    await assertFree(store, key, 'the rescheduled session\'s slot')
    assertEntry(onlySession((await claim(store, OWNER_B)).sessions, 'sess-3', 'no longer leased: due now'),
      { sessionId: 'sess-3', key: 'ip-1', checks: 1, ended: true, deliveries: 0 }, 'marked ended')
  },

  async 'tracking: sessionsOf lists the tracked sessions whose slots a key holds' ({ store }) {
    const key = request('ip-1')
    await bindTracked(store, 'sess-1', key, LONG_MS)
    await bindTracked(store, 'sess-2', key, LONG_MS)
    assert.equal(await store.bind(await slotOf(store, key), 'sess-untracked', LONG_MS), true, 'bind without track')
    await slotOf(store, request('ip-1', { concurrency: 4 }), 'a pending slot')
    await bindTracked(store, 'sess-3', request('ip-2'), LONG_MS)
    await store.track('sess-no-slot', { firstCheckMs: LONG_MS })
    const sorted = async (k: string): Promise<string[]> => [...await store.sessionsOf(k)].sort()
    assert.deepEqual(await sorted('ip-1'), ['sess-1', 'sess-2'], 'ip-1')
    assert.deepEqual(await sorted('ip-2'), ['sess-3'], 'ip-2')
    assert.deepEqual(await sorted('ip-3'), [], 'a key that holds nothing')
    assert.equal(await store.releaseSession('sess-1'), true, 'releaseSession')
    assert.deepEqual(await sorted('ip-1'), ['sess-2'], 'ip-1 after releaseSession')
    assert.equal(await store.markEnded('sess-2'), true, 'markEnded')
    assert.deepEqual(await sorted('ip-1'), [], 'ip-1 after markEnded')
    assert.equal(await store.untrack('sess-3'), true, 'untrack')
    assert.deepEqual(await sorted('ip-2'), [], 'ip-2 after untrack')
  },

  async 'tracking: releaseSession frees the slot and keeps tracking the session' ({ store }) {
    const key = request('ip-1', { concurrency: 1 })
    await bindTracked(store, 'sess-1', key)
    assert.equal(await store.releaseSession('sess-1', 'ip-1'), true, 'releaseSession')
    await assertFree(store, key, 'the released slot')
    assert.deepEqual(await store.sessionsOf('ip-1'), [], 'the key holds no tracked session')
    assertEntry(onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'still tracked'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 0, ended: false, deliveries: 0 }, 'released, not ended')
    assert.equal(await store.untrack('sess-1', OWNER_A), true, 'untrack')
  },

  async 'tracking: a tracked session\'s slot still expires after holdMs; the entry stays' (h) {
    const { store, clock } = h
    const key = request('ip-1', { concurrency: 1 })
    const slotId = await slotOf(store, key)
    const since = clock.now()
    assert.equal(await store.bind(slotId, 'sess-1', HOLD_MS, { firstCheckMs: LONG_MS }), true, 'bind with track')
    await assertHeld(h, key, 'key', since, HOLD_MS, 'right after bind')
    await assertExpires(h, key, 'key', since, HOLD_MS, 'the tracked session\'s slot')
    assert.deepEqual(await store.sessionsOf('ip-1'), [], 'the key holds no tracked session')
    assert.equal(await store.markEnded('sess-1'), true, 'still tracked')
    assertEntry(onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'still tracked'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 0, ended: true, deliveries: 0 }, 'after its slot expired')
  },

  async 'tracking: track starts tracking a session that holds no slot, without a key' ({ store, clock }) {
    const since = clock.now()
    await store.track('sess-1', { firstCheckMs: 0 })
    const [session] = (await claim(store, OWNER_A)).sessions
    assertEntry(onlySession([session as TrackedSession], 'sess-1', 'due at once'), { sessionId: 'sess-1', key: undefined, checks: 0, ended: false, deliveries: 0 }, 'no key')
    assert.ok((session as TrackedSession).ageMs <= clock.now() - since + clock.slackMs, 'ageMs counts from track')
    assert.equal(await store.releaseSession('sess-1'), false, 'it holds no slot')
    assert.equal(await store.markEnded('sess-1'), true, 'markEnded')
    assert.equal(await store.untrack('sess-1', OWNER_A), true, 'untrack by the owner')
    await assertNothingTracked(store, 'after untrack')
  },

  async 'tracking: tracking a tracked session again starts its entry afresh: counts, owner and schedule' ({ store }) {
    await store.track('sess-1', { firstCheckMs: 0, quotaKey: 'org-1' })
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'first claim')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0, checks: 2, deliveries: 1 }), true, 'counts recorded')
    assert.equal(await store.bind(await slotOf(store, request('ip-1')), 'sess-1', LONG_MS, { firstCheckMs: LONG_MS }), true, 'bound with track')
    await assertNothingDue(store, OWNER_B, 'due only after the new firstCheckMs')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0 }), false, 'the last claimer owns the fresh entry no more')
    await store.track('sess-1', { firstCheckMs: 0 })
    assertEntry(onlySession((await claim(store, OWNER_B)).sessions, 'sess-1', 'tracked again'),
      { sessionId: 'sess-1', key: undefined, checks: 0, ended: false, deliveries: 0 }, 'a fresh entry: no counts, no keys kept')
  },

  async 'tracking: the quota key given to bind or track comes back with every claim, beside the limiter key' ({ store }) {
    const slotId = await slotOf(store, request('user-1'))
    assert.equal(await store.bind(slotId, 'sess-1', LONG_MS, { firstCheckMs: 0, quotaKey: 'org-1' }), true, 'bind with a quota key')
    await store.track('sess-2', { firstCheckMs: 0, key: 'user-2', quotaKey: 'org-2' })
    const { sessions } = await claim(store, OWNER_A)
    const byId = new Map(sessions.map((session) => [session.sessionId, session]))
    assertEntry(byId.get('sess-1') as TrackedSession, { sessionId: 'sess-1', key: 'user-1', quotaKey: 'org-1', checks: 0, ended: false, deliveries: 0 }, 'bound')
    assertEntry(byId.get('sess-2') as TrackedSession, { sessionId: 'sess-2', key: 'user-2', quotaKey: 'org-2', checks: 0, ended: false, deliveries: 0 }, 'tracked without a slot')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0, ended: true }), true, 'marked ended')
    assertEntry(onlySession((await claim(store, OWNER_B)).sessions.filter((session) => session.sessionId === 'sess-1'), 'sess-1', 'after it ended'),
      { sessionId: 'sess-1', key: 'user-1', quotaKey: 'org-1', checks: 0, ended: true, deliveries: 0 }, 'kept once ended')
  },

  async 'tracking: 200 parallel claims by 4 owners claim each due entry exactly once' ({ store }) {
    const sessionIds = Array.from({ length: 60 }, (_, i) => `sess-${i}`)
    await Promise.all(sessionIds.map((sessionId, i) => i % 2 === 0
      ? store.track(sessionId, { firstCheckMs: 0 })
      : bindTracked(store, sessionId, request(`ip-${i % 10}`, { concurrency: 10 }))))
    const owners = ['tracker-0', 'tracker-1', 'tracker-2', 'tracker-3']
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) =>
      claim(store, owners[i % 4] as string, LONG_MS, 1 + (i % 3)).then(({ sessions }) => ({ owner: owners[i % 4] as string, sessions }))))
    const claims = results.flatMap(({ owner, sessions }) => sessions.map(({ sessionId }) => ({ owner, sessionId })))
    const claimed = claims.map(({ sessionId }) => sessionId)
    assert.equal(claimed.length, new Set(claimed).size, `${claimed.length} claims, ${new Set(claimed).size} distinct sessions: an entry was claimed twice`)
    assert.deepEqual([...claimed].sort(), [...sessionIds].sort(), 'every due entry was claimed')
    for (const { owner, sessionId } of claims) {
      const other = owners.find((candidate) => candidate !== owner) as string
      assert.equal(await store.untrack(sessionId, other), false, `${sessionId}: untrack by an owner that did not claim it`)
      assert.equal(await store.untrack(sessionId, owner), true, `${sessionId}: untrack by the owner that claimed it`)
    }
    await assertNothingTracked(store, 'after untrack')
    assert.deepEqual(await store.sessionsOf('ip-1'), [], 'no key holds a tracked session')
    await assertFree(store, request('ip-1', { concurrency: 1 }), 'untrack freed the slots')
  },

  async 'tracking: sessionsOf lists a session once, under the slot it was bound to last' ({ store }) {
    const key = request('ip-1')
    const firstSlot = await slotOf(store, key)
    assert.equal(await store.bind(firstSlot, 'sess-1', LONG_MS, { firstCheckMs: LONG_MS }), true, 'bind with track')
    assert.equal(await store.bind(await slotOf(store, key), 'sess-1', LONG_MS, { firstCheckMs: LONG_MS }), true, 'bind the session to a second slot of the key')
    assert.deepEqual(await store.sessionsOf('ip-1'), ['sess-1'], 'listed once')
    assert.equal(await store.bind(await slotOf(store, request('ip-2')), 'sess-1', LONG_MS, { firstCheckMs: LONG_MS }), true, 'bind it to a slot of another key')
    assert.deepEqual(await store.sessionsOf('ip-1'), [], 'ip-1 holds slots the session left')
    assert.deepEqual(await store.sessionsOf('ip-2'), ['sess-1'], 'ip-2 holds its slot')
    assert.equal(await store.releaseSession('sess-1'), true, 'releaseSession')
    assert.deepEqual(await store.sessionsOf('ip-2'), [], 'ip-2 after releaseSession')
    assert.deepEqual(await store.sessionsOf('ip-1'), [], 'ip-1 after releaseSession')
    await store.release(firstSlot)
  },

  async 'tracking: the owner may still reschedule or untrack its entry once its lease ran out, until another tracker claims it' (h) {
    const { store, clock } = h
    await bindTracked(store, 'sess-1', request('ip-1'))
    await bindTracked(store, 'sess-2', request('ip-1'))
    assert.deepEqual(idsOf((await claim(store, OWNER_A, LEASE_MS)).sessions).sort(), ['sess-1', 'sess-2'], 'owner A claims both')
    // Taken after the claim: the lease has surely ended LEASE_MS later.
    await passUntilDue(h, clock.now(), LEASE_MS)
    const rescheduled = clock.now()
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: LONG_MS, checks: 1 }), true, 'reschedule after the lease ran out')
    assert.equal(await store.untrack('sess-2', OWNER_A), true, 'untrack after the lease ran out')
    const left = await assertNothingDue(store, OWNER_B, 'the rescheduled entry waits for its delayMs')
    assertNextDue(h, left, rescheduled, LONG_MS, 'the rescheduled entry')
  },

  async 'tracking: untrack or markEnded of a bound session that is not tracked changes nothing: its slot stays held' ({ store }) {
    const key = request('ip-1', { concurrency: 1 })
    assert.equal(await store.bind(await slotOf(store, key), 'sess-1', LONG_MS), true, 'bind without track')
    assert.equal(await store.untrack('sess-1'), false, 'untrack')
    assert.equal(await store.untrack('sess-1', OWNER_A), false, 'untrack with an owner')
    assert.equal(await store.markEnded('sess-1'), false, 'markEnded')
    refusedWithin(await store.acquire(key), 'key', LONG_MS, 'the slot is still held')
    assert.equal(await store.releaseSession('sess-1'), true, 'the session still holds it')
  },

  async 'tracking: reschedule with ended false leaves ended as it is' ({ store }) {
    await bindTracked(store, 'sess-1', request('ip-1'))
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'claim')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0, ended: false }), true, 'ended false on a running entry')
    assertEntry(onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'still running'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 0, ended: false, deliveries: 0 }, 'not ended')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0, ended: true }), true, 'ended')
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'claim the ended entry')
    assert.equal(await store.reschedule('sess-1', OWNER_A, { delayMs: 0, ended: false }), true, 'ended false on an ended entry')
    assertEntry(onlySession((await claim(store, OWNER_A)).sessions, 'sess-1', 'still ended'),
      { sessionId: 'sess-1', key: 'ip-1', checks: 0, ended: true, deliveries: 0 }, 'an ended entry stays ended')
  },

  async 'tracking: nothing is left after untrack, whatever state the entries were in' ({ store }) {
    const key = request('ip-1', { concurrency: 5 })
    await bindTracked(store, 'sess-leased', key)
    await bindTracked(store, 'sess-waiting', key, LONG_MS)
    await bindTracked(store, 'sess-released', key, LONG_MS)
    await bindTracked(store, 'sess-ended', key, LONG_MS)
    await store.track('sess-no-slot', { firstCheckMs: LONG_MS })
    onlySession((await claim(store, OWNER_A)).sessions, 'sess-leased', 'claim')
    assert.equal(await store.releaseSession('sess-released'), true, 'releaseSession')
    assert.equal(await store.markEnded('sess-ended'), true, 'markEnded')
    assert.equal(await store.untrack('sess-leased', OWNER_A), true, 'untrack the leased one')
    for (const sessionId of ['sess-waiting', 'sess-released', 'sess-ended', 'sess-no-slot']) {
      assert.equal(await store.untrack(sessionId), true, `untrack ${sessionId}`)
    }
    await assertNothingTracked(store, 'after untrack')
    assert.deepEqual(await store.sessionsOf('ip-1'), [], 'ip-1 holds no tracked session')
    await assertFree(store, request('ip-1', { concurrency: 1 }), 'every slot is free')
  }
}

/** Runs a tracking case on `store` when it has every tracking method (or `required`); see `tracking`. */
async function runTracking (body: TrackingBody, harness: Harness<SessionStore>, required: boolean): Promise<void> {
  const present = trackingMethodsOf(harness.store)
  if (present.length === 0 && !required) return
  const missing = TRACKING_METHODS.filter((method) => !present.includes(method))
  if (missing.length > 0) {
    assert.fail(`the store implements ${present.length === 0 ? 'no tracking method' : present.join(', ')} but not ${missing.join(', ')}: ` +
      'a store that backs session tracking needs all of them')
  }
  await body({ ...harness, store: harness.store as TrackingSessionStore })
}

/**
 * The `SessionStore` contract (see `SessionStore`) as a list of named cases, runner-agnostic: each
 * `run` creates a fresh store with `createStore`, checks it with `node:assert/strict` and rejects
 * on the first failure. Register them with any runner:
 *
 * ```ts
 * for (const { name, run } of sessionStoreContract({ createStore })) test(name, run)
 * ```
 *
 * The cases named `tracking: ...` check the session tracking methods (see `TrackingStore`). A store
 * with none of `TRACKING_METHODS` passes them without any check (pass `tracking: false` to leave
 * them out of the list instead, or `tracking: true` to fail a store without them); a store with some
 * but not all fails them, since the plugin refuses it.
 */
export function sessionStoreContract<Store extends SessionStore> (options: SessionStoreContractOptions<Store>): SessionStoreContractCase[] {
  if (typeof options?.createStore !== 'function') {
    throw new TypeError('sessionStoreContract: options.createStore must be a function returning a fresh, empty SessionStore')
  }
  const bodies: Array<[string, Body<SessionStore>]> = Object.entries(CASES)
  if (options.tracking !== false) {
    const required = options.tracking === true
    for (const [name, body] of Object.entries(TRACKING_CASES)) bodies.push([name, async (harness) => { await runTracking(body, harness, required) }])
  }
  return contractCases(bodies, options)
}
