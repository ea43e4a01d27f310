/** What `IdempotencyStore.beginIdempotent` asks for. */
export interface IdempotencyBeginRequest {
  /** The entry's id: the plugin's scope (the limiter key, or the IP) with the client's `Idempotency-Key`. */
  key: string
  /** What identifies the request's content: a repeat with another fingerprint is a different request. */
  fingerprint: string
  /** Who begins: an id of this attempt, unique across instances. */
  attempt: string
  /** How long the in-flight mark lives if the attempt neither completes nor abandons it, in milliseconds. */
  pendingMs: number
}

export type IdempotencyBeginResult =
  /** The key was free: this attempt holds it now. */
  | { state: 'started' }
  /** Another attempt with the same fingerprint holds it and has not finished. */
  | { state: 'in-flight' }
  /** An attempt with the same fingerprint completed: its reply, as stored. */
  | { state: 'completed', reply: string }
  /** The key is held (in flight or completed) for another fingerprint. */
  | { state: 'mismatch' }

/**
 * The contract between idempotent minting and where its replies live. `MemorySessionStore` (one
 * process) and `RedisSessionStore` (every instance on one Redis or Redis Cluster replays the others'
 * replies) implement it beside `SessionStore`; implement it to keep replies elsewhere, and check it
 * with `idempotencyStoreContract` (`fastify-oshara-voice/testing`). Every method must be atomic with
 * respect to concurrent callers, also across processes for a shared store. Times are durations on
 * the store's own clock.
 *
 * An entry, by its key, is in one of three states:
 * - **free**: never begun, abandoned, or expired;
 * - **in flight** for one attempt A with a fingerprint F: it expires `pendingMs` after the begin,
 *   so a process that dies mid-request blocks the key no longer than that;
 * - **completed** with F and a reply R: it expires `ttlMs` after the complete.
 * Keys are apart: no call changes another key's entry. Only the attempt that began an entry
 * completes or abandons it: once its mark has expired and another attempt began, the late one
 * changes nothing.
 *
 * | call | free | in flight (A, F) | completed (F, R) | cases |
 * | --- | --- | --- | --- | --- |
 * | `beginIdempotent({ key, fingerprint, attempt, pendingMs })` | in flight for this attempt and fingerprint: `started` (one of many parallel begins) | nothing: `in-flight` for F, else `mismatch` | nothing: `completed` with R, exactly as stored, for F; else `mismatch` | I1 I2 I3 I6 I7 |
 * | `completeIdempotent(key, attempt, reply, ttlMs)` | nothing: false | by A: completed with the reply, kept `ttlMs` from now: true; else nothing: false | nothing: false | I2 I3 I5 I6 I8 |
 * | `abandonIdempotent(key, attempt)` | nothing: false | by A: free: true; else nothing: false | nothing: false | I2 I4 I5 |
 * | time passes | — | free `pendingMs` after the begin | free `ttlMs` after the complete | I8 I9 |
 *
 * Cases of `idempotencyStoreContract`:
 * - I1: "a free key starts; a repeat is in flight; another fingerprint is a mismatch"
 * - I2: "a completed key replays its reply to every repeat; another fingerprint is a mismatch"
 * - I3: "replies are stored as given: any string, unicode and 100 KiB alike"
 * - I4: "abandon forgets the key: the next begin starts afresh"
 * - I5: "only the attempt that began a key completes or abandons it"
 * - I6: "keys are apart"
 * - I7: "100 parallel begins of one key: exactly one starts, the others see it in flight"
 * - I8: "an in-flight mark expires after pendingMs: a late complete then stores nothing"
 * - I9: "a completed reply is forgotten ttlMs after it was stored"
 */
export interface IdempotencyStore {
  /** Marks `key` as in flight for `attempt` when it is free; otherwise says what holds it. */
  beginIdempotent (request: IdempotencyBeginRequest): Promise<IdempotencyBeginResult>
  /**
   * Stores `reply` for the key `attempt` began, kept `ttlMs` from now. False (and nothing stored)
   * when the key is no longer that attempt's in-flight mark: expired, abandoned, taken by another, completed.
   */
  completeIdempotent (key: string, attempt: string, reply: string, ttlMs: number): Promise<boolean>
  /** Forgets the key when it is `attempt`'s in-flight mark; true when it was. A completed reply is left alone. */
  abandonIdempotent (key: string, attempt: string): Promise<boolean>
}

export const IDEMPOTENCY_METHODS = ['beginIdempotent', 'completeIdempotent', 'abandonIdempotent'] as const
