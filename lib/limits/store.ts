/**
 * The contract between the concurrent-session limiter and where its slots live. Implement it
 * to back the limiter with another database; `MemorySessionStore` and `RedisSessionStore` are
 * the two built in. Every method must be atomic with respect to concurrent callers, also
 * across processes for a shared store.
 *
 * A slot's life: `acquire` reserves it before the upstream call (expiring after `pendingMs`
 * if nothing follows), `bind` ties it to the minted `session_id` and sets its expiry to
 * `holdMs` from now, `release` frees it when minting failed, `releaseSession` frees it when
 * the call ends. An expired slot counts for nothing and must be forgotten by the store itself.
 */
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

/**
 * Session tracking (on when `apiKey` is set and `limits` or `onSessionEnd` is): every minted
 * session is remembered until Oshara reports it finalized, so its slot is held until the call
 * really ends and `onSessionEnd` is delivered once. A store that implements these methods can
 * back tracking; the built-in stores do. All times are the store's own clock (for Redis, the
 * server's), given as durations, so instances with skewed clocks agree.
 *
 * An entry's life: `bind(..., track)` (or `track` for a session without a slot) writes it, due
 * `firstCheckMs` from now. A tracker `claimDue`s entries that are due: each claimed entry is
 * leased to that tracker (`owner`) for `leaseMs`, and becomes due again when the lease ends, so
 * another instance takes over the sessions of one that died. The owner then either
 * `reschedule`s it (not finalized yet, or a failed delivery), or `untrack`s it (delivered, or
 * given up). `reschedule(..., { ended: true })` and `markEnded` free the session's slot at once,
 * in the same atomic step. `releaseSession` (the browser's `DELETE`) frees the slot but keeps
 * tracking the session, so `onSessionEnd` still comes. A tracked session's slot expires after
 * the `holdMs` given to `bind` (the tracking's `maxTrackMs`), as any slot does.
 *
 * An entry is due once its due time is now or past (`firstCheckMs: 0` is due at once). It is
 * leased from a claim until its owner reschedules it or the lease ends; its owner, the tracker
 * that claimed it last, may `reschedule` or `untrack` it until another tracker claims it (also
 * after its own reschedule, or once its lease ran out). Tracking a tracked session again starts
 * its entry afresh. `sessionStoreContract` (`fastify-oshara-voice/testing`) checks all of this.
 */
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

/** The methods a store needs for session tracking, on top of `SessionStore`. */
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
