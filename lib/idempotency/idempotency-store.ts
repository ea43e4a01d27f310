/**
 * The contract between idempotent minting and where its replies live. `MemorySessionStore` (one
 * process) and `RedisSessionStore` (every instance on one Redis or Redis Cluster replays the others'
 * replies) implement it beside `SessionStore`; implement it to keep replies elsewhere. Every method
 * must be atomic with respect to concurrent callers, also across processes for a shared store.
 *
 * An entry's life: `beginIdempotent` marks the key as in flight for one attempt (the mark lives
 * `pendingMs`, so a process that dies mid-request blocks the key no longer than that);
 * `completeIdempotent` stores that attempt's reply for `ttlMs`, after which the key is forgotten;
 * `abandonIdempotent` forgets the key at once (the attempt failed, and a retry may try again). Only
 * the attempt that began an entry completes or abandons it: once its mark has expired and another
 * attempt began, the late one changes nothing. Times are durations on the store's own clock.
 * `idempotencyStoreContract` (`fastify-oshara-voice/testing`) checks all of this.
 */
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
