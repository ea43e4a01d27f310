import { failure } from '../errors.js'
import type { OsharaLogger } from '../client/options.js'
import { publishStoreError } from '../observability/channels.js'
import { MemorySessionStore } from './memory-store.js'
import { storeFailure, withTimeout } from './store-call.js'
import type { AcquireResult, SessionStore, TrackingSessionStore } from './store.js'

/** What binding needs to know when sessions are tracked. */
export interface BindTracking {
  firstCheckMs: number
  /** The longest a tracked session holds its slot (`tracking.maxTrackMs`). */
  maxTrackMs: number
}

export interface LimiterConfig {
  readonly store: SessionStore
  readonly concurrency: number
  readonly global: number | undefined
  /** Fixed hold per session; undefined: the session's `expires_in_seconds`. */
  readonly holdMs: number | undefined
  readonly onStoreError: 'deny' | 'allow'
  /** Longest wait for the store before `onStoreError` applies. */
  readonly storeTimeoutMs: number
  /** How long a reservation lives before its session is bound. */
  readonly pendingMs: number
}

interface Logger extends OsharaLogger {
  error (object: Record<string, unknown>, message: string): void
}

/** The concurrent-session limiter: reserve, bind, release, over a `SessionStore`. */
export class SessionLimiter {
  readonly config: LimiterConfig
  /** Undefined for the in-process store, which cannot hang: it is awaited with no timer. */
  readonly #timeoutMs: number | undefined

  constructor (config: LimiterConfig) {
    this.config = config
    this.#timeoutMs = config.store instanceof MemorySessionStore ? undefined : config.storeTimeoutMs
  }

  /**
   * Reserves a slot for `key`. Resolves to its id, or to undefined when the store failed and
   * `onStoreError` is `'allow'` (the session then goes unlimited). Rejects with
   * `FST_OSHARA_SESSION_LIMIT`, or `FST_OSHARA_UNAVAILABLE` when the store failed and `'deny'`.
   * A slot the store grants after `storeTimeoutMs` belongs to nobody: it is released at once.
   */
  async acquire (key: string, log: Logger): Promise<string | undefined> {
    const { store, concurrency, global, pendingMs } = this.config
    const timeoutMs = this.#timeoutMs
    let result
    try {
      const pending = store.acquire({ key, concurrency, global, pendingMs })
      // A slot granted too late is released at once (release() logs its own failure, never rejects).
      const releaseLate = timeoutMs === undefined ? undefined : (late: AcquireResult): void => { if (late.ok) this.release(late.slotId, log) }
      result = await withTimeout(pending, timeoutMs, releaseLate)
    } catch (cause) {
      publishStoreError('limiter', 'acquire', cause)
      if (this.config.onStoreError === 'allow') {
        log.warn(storeFailure(cause), 'oshara: session store failed; serving without a session limit (onStoreError: allow)')
        return undefined
      }
      log.error(storeFailure(cause), 'oshara: session store failed; refusing the session (onStoreError: deny)')
      throw failure('FST_OSHARA_UNAVAILABLE', 'store-down', { cause })
    }
    if (result.ok) return result.slotId
    throw failure('FST_OSHARA_SESSION_LIMIT', 'reached', { scope: result.scope, waitMs: result.retryAfterMs, detail: `${result.scope} limit reached` })
  }

  /**
   * Ties the slot to the minted session for `limits.holdMs` (or the session's own lifetime). With
   * `tracking`, in the same store operation the session is tracked (its minutes and cost counted
   * under `quotaKey`), and its slot is held until it is finalized (at most `tracking.maxTrackMs`),
   * not until its token expires.
   */
  async bind (slotId: string, sessionId: string, expiresInSeconds: number, log: Logger, tracking?: BindTracking, quotaKey?: string): Promise<void> {
    const holdMs = this.config.holdMs ?? tracking?.maxTrackMs ?? expiresInSeconds * 1000
    const store = this.config.store as TrackingSessionStore
    try {
      const pending = tracking === undefined
        ? store.bind(slotId, sessionId, holdMs)
        : store.bind(slotId, sessionId, holdMs, { firstCheckMs: tracking.firstCheckMs, quotaKey })
      await withTimeout(pending, this.#timeoutMs)
    } catch (cause) {
      publishStoreError('limiter', 'bind', cause)
      // The reservation still expires after pendingMs, so nothing leaks for long.
      log.warn({ ...storeFailure(cause), session_id: sessionId }, 'oshara: session store failed to bind the slot')
    }
  }

  /** Frees a reservation after a failed mint. Never throws: a failure only shortens nothing, it is logged. */
  async release (slotId: string, log: Logger): Promise<void> {
    try {
      await withTimeout(this.config.store.release(slotId), this.#timeoutMs)
    } catch (cause) {
      publishStoreError('limiter', 'release', cause)
      log.warn(storeFailure(cause), 'oshara: session store failed to release a slot; it frees when it expires')
    }
  }

  /** Frees the slot of `sessionId` (only `key`'s, when given). Rejects with `FST_OSHARA_UNAVAILABLE` when the store fails. */
  async releaseSession (sessionId: string, key?: string): Promise<boolean> {
    try {
      return await withTimeout(this.config.store.releaseSession(sessionId, key), this.#timeoutMs)
    } catch (cause) {
      publishStoreError('limiter', 'releaseSession', cause)
      throw failure('FST_OSHARA_UNAVAILABLE', 'store-down', { cause })
    }
  }
}
