/** What `SessionStore.acquire` asks for. */
export interface SlotRequest {
  /** The limiter key (by default the client IP). */
  key: string
  /** Most slots this key may hold at once. */
  concurrency: number
  /** Most slots all keys together may hold at once; `undefined`: no global cap. */
  global?: number | undefined
  /** How long an unbound reservation lives, in milliseconds. */
  pendingMs: number
}

export type AcquireResult =
  | { ok: true, slotId: string }
  | {
    ok: false
    /**
     * Milliseconds until the first slot of the limiting scope expires (0 when unknown, or when
     * the scope holds no slot because its limit is 0). A release may free one sooner.
     */
    retryAfterMs: number
    /** Which limit was hit; `key` when both are. */
    scope: 'key' | 'global'
  }

/** What a store knows of a session (see `SessionStore.sessionState`). */
export interface SessionState {
  /** The limiter key of its live slot, else of its tracked entry; undefined when neither has one. */
  key: string | undefined
  /** Tracked, and Oshara reported it finalized (its slot is free; `onSessionEnd` may still be under way). */
  ended: boolean
}

/**
 * The contract between the concurrent-session limiter and where its slots live. Implement it
 * to back the limiter with another database (`MemorySessionStore` and `RedisSessionStore` are the
 * two built in), and check it with `sessionStoreContract` (`fastify-oshara-voice/testing`). Every
 * method must be atomic with respect to concurrent callers, also across processes for a shared
 * store. Durations are milliseconds on the store's own clock.
 *
 * A slot, by its id, is in one of three states:
 * - **free**: never acquired, released, or expired. It counts for nothing, and the store forgets
 *   it by itself;
 * - **pending**: acquired, not bound to a session; it expires `pendingMs` after `acquire`;
 * - **bound** to a session S: it expires `holdMs` after its last `bind`. A session is bound to one
 *   slot at most: binding S to another slot unbinds it from this one, which stays held (bound to
 *   nothing) until it expires or is released by its id.
 *
 * Pending and bound slots are held: each counts toward its key's `concurrency` and toward `global`.
 *
 * | call | free | pending | bound to S | answers | cases |
 * | --- | --- | --- | --- | --- | --- |
 * | `acquire(request)` | a new pending slot for `request.key`, with an id never used before, when the key holds fewer than `concurrency` slots and all keys fewer than `global` (no cap when undefined); else nothing changes | — | — | `{ ok: true, slotId }`; else `{ ok: false, scope, retryAfterMs }`: `scope` is `'key'` when the key is full (also when both are), else `'global'`; `retryAfterMs` is the time until that scope's first held slot expires, 0 when it holds none | S1 S2 S3 S4 S5 S6 S7 S16 |
 * | `bind(slotId, T, holdMs)` | nothing | bound to T, expiring `holdMs` from now | bound to T instead of S (S holds no slot then), expiring `holdMs` from now | true when the slot was held, false when free | S8 S9 S10 S17 |
 * | `release(slotId)` | nothing | free | free, S unbound | nothing | S11 |
 * | `releaseSession(S, key?)` | — | — | free, when `key` is left out or is the slot's key; else nothing | true when a slot was freed; false when none is bound to S or `key` does not hold it | S12 S17 |
 * | time passes | — | free `pendingMs` after `acquire`; a late `bind` answers false | free `holdMs` after `bind` | — | S13 S14 S15 |
 * | `sessionState(S)` (optional, read only; see also `TrackingStore`) | — | — | `{ key, ended: false }`, `key` the slot's | `undefined` when no held slot is bound to S and S is not tracked | S18 |
 *
 * Cases of `sessionStoreContract`:
 * - S1: "acquire grants up to concurrency slots per key, pending and bound alike"
 * - S2: "each key has its own limit"
 * - S3: "50 parallel acquires for one key with concurrency 3: exactly 3 get a slot"
 * - S4: "the global cap counts slots of every key: 100 parallel acquires, global 5, exactly 5 slots"
 * - S5: "the key limit is reported before the global one"
 * - S6: "retryAfterMs is the time until the limiting scope frees its first slot"
 * - S7: "a limit of 0 refuses with retryAfterMs 0"
 * - S8: "bind ties the slot to its session and moves its expiry to holdMs from now"
 * - S9: "binding again moves the slot to the new session"
 * - S10: "a late bind does not bring a released or unknown slot back"
 * - S11: "release frees a slot, with its session; twice or with an unknown id it changes nothing"
 * - S12: "releaseSession frees the bound slot; with a key, only for the key that holds it"
 * - S13: "a pending slot expires after pendingMs; a late bind then fails"
 * - S14: "a bound slot expires after holdMs, not pendingMs"
 * - S15: "expired slots stop counting toward the global cap"
 * - S16: "slot ids are unique, also after release"
 * - S17: "a session bound to a second slot leaves the first, which stays held until it is released by id"
 * - S18: "sessionState (optional): a bound session has its slot's key; a pending, freed or unknown one is undefined"
 */
export interface SessionStore {
  /** Reserve a slot for `key`, or say which limit is full and when it frees. */
  acquire (request: SlotRequest): Promise<AcquireResult>
  /**
   * Tie a live slot to its session; it then expires `holdMs` from now. Binding a bound slot
   * again moves it to the new session. False when the slot is gone (released, expired or
   * unknown): a late bind never brings a slot back.
   */
  bind (slotId: string, sessionId: string, holdMs: number): Promise<boolean>
  /**
   * Free a slot by its id (minting failed, or `onSession` threw), with its session if it was
   * bound. Unknown, released and expired ids are ignored.
   */
  release (slotId: string): Promise<void>
  /**
   * Free the live slot bound to `sessionId`. With `key`, only when that key holds it.
   * True when a slot was freed; false when none is bound to that session or `key` does not hold it.
   */
  releaseSession (sessionId: string, key?: string): Promise<boolean>
  /**
   * Optional, read only (agent tools ask it on each tool call): what the store knows of
   * `sessionId`. Undefined when no live slot is bound to it and it is not tracked (never seen,
   * freed, expired or untracked); else its key and whether it is tracked as ended. A store
   * without it serves tools without the ended-session check (410) and without `ctx.key`.
   */
  sessionState? (sessionId: string): Promise<SessionState | undefined>
}

/** What `TrackingStore.track`, and `bind` with tracking, ask for. */
export interface TrackRequest {
  /** When the first lookup is due, from now. */
  firstCheckMs: number
  /** For `track` (a session without a slot): the key to report it under. `bind` uses the slot's key. */
  key?: string | undefined
  /** The quota key its minutes and cost count against when it ends; undefined when no quota counts it. */
  quotaKey?: string | undefined
}

export interface TrackedSession {
  sessionId: string
  /** The limiter key whose slot it held (kept once the slot is freed); undefined for a session minted without one. */
  key: string | undefined
  /** The quota key it was counted under (`TrackRequest.quotaKey`); undefined when none. */
  quotaKey: string | undefined
  /** How long it has been tracked, in milliseconds. */
  ageMs: number
  /** Lookups made so far that found it still running (or failed). */
  checks: number
  /** Oshara reported it finalized: its slot is free, `onSessionEnd` is yet to be delivered. */
  ended: boolean
  /** Deliveries of `onSessionEnd` tried so far. */
  deliveries: number
}

export interface ClaimRequest {
  /** Who claims: one id per tracker (per app instance and registration). */
  owner: string
  /** How long the claim holds before another tracker may take the entry. */
  leaseMs: number
  /** Most entries to claim. */
  limit: number
}

export interface ClaimResult {
  /** The claimed entries, earliest due first. */
  sessions: TrackedSession[]
  /**
   * Milliseconds until the next entry that this call did not claim is due (a leased one: when its
   * lease ends), 0 when one is due already (`limit` was reached); undefined when no other entry is tracked.
   */
  nextDueMs: number | undefined
}

export interface RescheduleRequest {
  /** When it is due again, from now. */
  delayMs: number
  /** Set `checks`. */
  checks?: number
  /** Mark it finalized and free its slot (`false` changes nothing: an ended entry stays ended). */
  ended?: boolean
  /** Set `deliveries`. */
  deliveries?: number
}

/**
 * The methods a store needs for session tracking, on top of `SessionStore`. Tracking (on when
 * `apiKey` is set and `limits` or `onSessionEnd` is) remembers every minted session until Oshara
 * reports it finalized, so that its slot is held until the call really ends and `onSessionEnd` is
 * delivered once. The built-in stores implement it; `sessionStoreContract` checks it (its cases
 * named `tracking: ...`). Every method is atomic, as for `SessionStore`; times are durations on the
 * store's own clock (for Redis, the server's), so instances with skewed clocks agree.
 *
 * An entry, by session id, is in one of three states:
 * - **untracked**: never tracked, or untracked;
 * - **scheduled**: due at a time (claimable once that time is now or past; `firstCheckMs: 0` is due
 *   at once);
 * - **leased** to an owner (a tracker, one per app instance and registration): claimed, and not
 *   rescheduled since; it becomes due again when the lease ends, so another tracker takes over the
 *   sessions of one that died.
 * An entry carries its `key` (the limiter key its slot had, kept once the slot is freed), `quotaKey`,
 * age, `checks`, `ended`, `deliveries`, and its owner: the tracker that claimed it last, which may
 * `reschedule` or `untrack` it until another tracker claims it (also after its own reschedule, or
 * once its lease ran out). Its slot, if it has one, follows `SessionStore`: only the calls below
 * that say so free it, and it still expires after the `holdMs` given to `bind` (the tracking's
 * `maxTrackMs`).
 *
 * | call | untracked | scheduled | leased to O | answers | cases |
 * | --- | --- | --- | --- | --- | --- |
 * | `bind(slotId, S, holdMs, track)` | when the bind succeeds, in the same atomic step: scheduled afresh, due `firstCheckMs` from now, `key` the slot's, `quotaKey` as given, `checks` 0, not ended, `deliveries` 0, no owner | same: afresh | same: afresh | as `SessionStore.bind`; a bind that fails, or one without `track`, tracks nothing | T2 T3 T17 T18 |
 * | `track(S, request)` | scheduled afresh, as for `bind`, `key` = `request.key` | same: afresh | same: afresh | nothing | T16 T17 T18 |
 * | `claimDue({ owner, leaseMs, limit })` | — | when due: leased to `owner` for `leaseMs`; at most `limit` entries, earliest due first, each claimed by one call only | when its lease has ended: leased to `owner` (a takeover) | the claimed entries; `nextDueMs`: the time until the next entry this call did not claim is due (a leased one: when its lease ends), 0 when one is due already, undefined when there is none | T4 T5 T6 T19 |
 * | `reschedule(S, O, request)` | nothing | owner O: scheduled, due `delayMs` from now, `checks` and `deliveries` set when given; `ended: true` marks it ended and frees its slot; `ended: false` or none leaves `ended` as it is. Another owner, or none: nothing | owner O: as when scheduled; another: nothing | true when O is the owner; else false | T7 T8 T9 T10 T21 T23 |
 * | `untrack(S, owner?)` | nothing; a slot bound to S stays held | untracked, its slot freed; with `owner`, only when that is its owner | same | true when an entry was removed | T11 T20 T21 T22 T24 |
 * | `markEnded(S)` | nothing; a slot bound to S stays held | not ended: ended, its slot freed, due now if it was due later; ended: nothing | not ended: ended, its slot freed, still leased; ended: nothing | true when tracked | T10 T12 T22 |
 * | `releaseSession(S)` (of `SessionStore`) | as `SessionStore` | its slot freed; the entry unchanged, `onSessionEnd` still comes | same | as `SessionStore` | T14 |
 * | its slot expires | — | the entry unchanged | same | — | T15 |
 * | `sessionsOf(key)` (read only) | — | listed once when S is bound to a held slot of `key` | same | the session ids, in no particular order | T13 T20 |
 * | `sessionState(S)` (optional, read only) | as `SessionStore` | `{ key, ended }`: the key of its held slot, else the entry's | same | — | T1 |
 *
 * Cases of `sessionStoreContract`:
 * - T1: "tracking: sessionState (optional) knows a tracked session until it is untracked, and whether it ended"
 * - T2: "tracking: bind with track holds the slot and makes the session due after firstCheckMs, not before"
 * - T3: "tracking: bind without track, or a bind that fails, tracks nothing"
 * - T4: "tracking: a claim leases its entries: no other owner claims them until the lease ends, then one takes them over"
 * - T5: "tracking: claimDue claims at most limit entries, earliest due first"
 * - T6: "tracking: nextDueMs is the time until the next entry not claimed is due, undefined when nothing is"
 * - T7: "tracking: the owner reschedules an entry: due again after delayMs, with checks and deliveries set"
 * - T8: "tracking: only the owner, the tracker that claimed the entry last, reschedules it"
 * - T9: "tracking: reschedule with ended frees the slot at once; the entry stays, claimable with ended true"
 * - T10: "tracking: the owner ends an entry, delivers it and untracks it; markEnded meanwhile changes nothing"
 * - T11: "tracking: untrack removes the entry and frees its slot; with an owner, only by the tracker that claimed it last"
 * - T12: "tracking: markEnded frees the slot, marks the session ended and makes it due now unless leased"
 * - T13: "tracking: sessionsOf lists the tracked sessions whose slots a key holds"
 * - T14: "tracking: releaseSession frees the slot and keeps tracking the session"
 * - T15: "tracking: a tracked session's slot still expires after holdMs; the entry stays"
 * - T16: "tracking: track starts tracking a session that holds no slot, without a key"
 * - T17: "tracking: tracking a tracked session again starts its entry afresh: counts, owner and schedule"
 * - T18: "tracking: the quota key given to bind or track comes back with every claim, beside the limiter key"
 * - T19: "tracking: 200 parallel claims by 4 owners claim each due entry exactly once"
 * - T20: "tracking: sessionsOf lists a session once, under the slot it was bound to last"
 * - T21: "tracking: the owner may still reschedule or untrack its entry once its lease ran out, until another tracker claims it"
 * - T22: "tracking: untrack or markEnded of a bound session that is not tracked changes nothing: its slot stays held"
 * - T23: "tracking: reschedule with ended false leaves ended as it is"
 * - T24: "tracking: nothing is left after untrack, whatever state the entries were in"
 */
export interface TrackingStore {
  /**
   * As `SessionStore.bind`, and in the same atomic step, start tracking the session for the
   * slot's key. The tracker passes `track` only when tracking is on. A bind that fails tracks nothing.
   */
  bind (slotId: string, sessionId: string, holdMs: number, track?: TrackRequest): Promise<boolean>
  /** Start tracking a session that holds no slot (minted without a limiter key), under `request.key` if given. */
  track (sessionId: string, request: TrackRequest): Promise<void>
  /** Lease up to `limit` due entries to `owner`. */
  claimDue (request: ClaimRequest): Promise<ClaimResult>
  /**
   * The owner releases its lease: due again after `delayMs`; `checks` and `deliveries` not given are
   * kept. False when `owner` did not claim it last (it was taken over, or never claimed).
   */
  reschedule (sessionId: string, owner: string, request: RescheduleRequest): Promise<boolean>
  /**
   * Stop tracking and free the session's slot if it still holds one. With `owner`, only when it is
   * the entry's owner (see above). True when an entry was removed; an untracked session's slot is left alone.
   */
  untrack (sessionId: string, owner?: string): Promise<boolean>
  /**
   * Oshara reported the session finalized outside a claim (a key at its limit had its sessions
   * looked up): free its slot, mark it ended, and make it due now unless it is leased, so that
   * `onSessionEnd` is delivered soon. An entry already ended is left as it is (its delivery is under
   * way or scheduled). False when it is not tracked.
   */
  markEnded (sessionId: string): Promise<boolean>
  /** The tracked sessions whose slots `key` holds, in no particular order. */
  sessionsOf (key: string): Promise<string[]>
}

/** A store that backs both the limiter and session tracking. */
export type TrackingSessionStore = SessionStore & TrackingStore

export const TRACKING_METHODS = ['track', 'claimDue', 'reschedule', 'untrack', 'markEnded', 'sessionsOf'] as const
