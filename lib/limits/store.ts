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
}
