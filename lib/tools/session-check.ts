import type { FastifyBaseLogger } from 'fastify'
import { failure } from '../errors.js'
import type { SessionLimiter } from '../limits/limiter.js'
import { MemorySessionStore } from '../limits/memory-store.js'
import { DEFAULT_STORE_TIMEOUT_MS, storeFailure, withTimeout } from '../limits/store-call.js'
import type { SessionState, SessionStore } from '../limits/store.js'
import { publishStoreError } from '../observability/channels.js'
import type { TrackerConfig } from '../tracking/tracker.js'

/** What a tool call learns of its session from the store. */
export interface SessionStanding {
  /** The plugin knows the session has ended: the call gets 410. */
  ended: boolean
  /** `ctx.key`: the limiter key, with `limits`. */
  key: string | undefined
}

type StateStore = SessionStore & Required<Pick<SessionStore, 'sessionState'>>

const UNKNOWN: SessionStanding = Object.freeze({ ended: false, key: undefined })

/**
 * Asks the session store about a tool call's session: the tracking store when tracking is on (it
 * also holds the slots when `limits` is set), else the limiter's. A session the store no longer
 * knows has ended when its signature says the plugin followed it (it held a slot, or was tracked).
 */
export class SessionCheck {
  readonly #store: StateStore
  readonly #timeoutMs: number | undefined
  readonly #limited: boolean
  readonly #onStoreError: 'deny' | 'allow'
  readonly #storeName: 'limiter' | 'tracking'

  /** Undefined when there is nothing to ask: no limits nor tracking, or a store without `sessionState`. */
  static create (limiter: SessionLimiter | undefined, tracking: TrackerConfig | undefined, log: FastifyBaseLogger): SessionCheck | undefined {
    const store = tracking?.store ?? limiter?.config.store
    if (store === undefined) return undefined
    if (typeof store.sessionState !== 'function') {
      log.warn('oshara: the session store has no sessionState method: tool calls are not checked for ended sessions (410), and ctx.key is undefined')
      return undefined
    }
    return new SessionCheck(store as StateStore, limiter, tracking === undefined ? 'limiter' : 'tracking')
  }

  private constructor (store: StateStore, limiter: SessionLimiter | undefined, storeName: 'limiter' | 'tracking') {
    this.#store = store
    this.#timeoutMs = store instanceof MemorySessionStore ? undefined : limiter?.config.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS
    this.#limited = limiter !== undefined
    this.#onStoreError = limiter?.config.onStoreError ?? 'allow'
    this.#storeName = storeName
  }

  /**
   * The session's standing. A store failure (or a store slower than `limits.storeTimeoutMs`)
   * follows `limits.onStoreError`: `'deny'` rejects with `FST_OSHARA_UNAVAILABLE` (503); `'allow'`,
   * and tracking without limits, serve the call as not ended and without a key.
   */
  async standing (sessionId: string, followed: boolean, log: FastifyBaseLogger): Promise<SessionStanding> {
    let state: SessionState | undefined
    try {
      state = await withTimeout(this.#store.sessionState(sessionId), this.#timeoutMs)
    } catch (cause) {
      publishStoreError(this.#storeName, 'sessionState', cause)
      if (this.#onStoreError === 'deny') {
        log.error(storeFailure(cause), 'oshara: session store failed; refusing the tool call (onStoreError: deny)')
        throw failure('FST_OSHARA_UNAVAILABLE', 'tool-store-down', { cause })
      }
      log.warn(storeFailure(cause), 'oshara: session store failed; serving the tool call without the ended-session check or ctx.key')
      return UNKNOWN
    }
    if (state === undefined) return { ended: followed, key: undefined }
    return { ended: state.ended, key: this.#limited ? state.key : undefined }
  }
}
