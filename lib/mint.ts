import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { createSessionThrough, type MintCallOptions } from './client/client.js'
import type { OsharaSession, SessionRequest } from './client/schemas.js'
import type { CallerSignal } from './client/transport.js'
import { failure, OsharaSessionLimitError } from './errors.js'
import type { SessionLimiter } from './limits/limiter.js'
import { limitChannel, type OsharaLimitMessage } from './observability/channels.js'
import { kTracing } from './observability/tracing.js'
import type { Registration } from './registration.js'
import type { SessionTracker } from './tracking/tracker.js'

/** What minting reads of its registration: the client, the limiter, the tracker, the counters, the spans and the signer. */
export type Minter = Pick<Registration, 'client' | 'limiter' | 'tracker' | 'bindTracking' | 'stats' | 'tracing' | 'signer'>

export interface MintOptions<T> {
  /** The limiter key (undefined: not limited); without a limiter, the key a tracked session is reported under. */
  limiterKey: string | undefined
  /** The quota key a tracked session's minutes and cost count against when it ends (undefined: none). */
  quotaKey: string | undefined
  log: FastifyBaseLogger
  /** The browser's disconnect (the route), or the caller's `AbortSignal` (the decorator). */
  signal: CallerSignal | undefined
  /** `X-Request-Id` of the upstream call (the route's `request.id`); a random UUID when undefined. */
  requestId: string | undefined
  /** Runs after the slot is bound (the route's `onSession` and `response`); a throw frees the slot. */
  finish: ((session: OsharaSession) => Promise<T>) | undefined
}

/**
 * Mints a session for `draft`: take a limiter slot (when `limiterKey` is given), call upstream,
 * bind the slot, run `finish`. Any failure after the slot is taken frees it; a caller
 * that is already gone reserves nothing and starts no upstream call.
 */
export async function mint<T = OsharaSession> (minter: Minter, draft: SessionRequest, { limiterKey, quotaKey, log, signal, requestId = randomUUID(), finish }: MintOptions<T>): Promise<T> {
  const { client, limiter, tracker } = minter
  if (signal?.aborted === true) throw failure('FST_OSHARA_ABORTED', 'before-mint', { requestId })
  const slot = limiter !== undefined && limiterKey !== undefined ? await takeSlot(limiter, tracker, limiterKey, log, requestId) : undefined
  let session: OsharaSession
  try {
    const options: MintCallOptions = { signal, log, requestId, [kTracing]: minter.tracing }
    // The plugin follows a session that holds a slot or is tracked: once the store forgets it, it has ended.
    const body = minter.signer === undefined ? draft : { ...draft, metadata: minter.signer.sign(draft.metadata, slot !== undefined || tracker !== undefined) }
    session = await createSessionThrough(client, body, options)
  } catch (error) {
    if (slot !== undefined) await limiter?.release(slot, log)
    throw error
  }
  minter.stats.minted++
  if (slot !== undefined) {
    await limiter?.bind(slot, session.session_id, session.expires_in_seconds, log, minter.bindTracking, quotaKey)
    tracker?.scheduleFirstCheck()
  } else {
    await tracker?.track(session.session_id, limiterKey, quotaKey)
  }
  if (finish === undefined) return session as T
  try {
    return await finish(session)
  } catch (error) {
    // The session exists upstream but nobody will use it: free the slot now.
    if (slot !== undefined) await limiter?.release(slot, log)
    throw error
  }
}

/**
 * A slot for `key` (undefined: the store failed and `onStoreError` is 'allow'). With tracking, a key
 * at its limit has its ended sessions found and freed, then tries once more; and every refusal says
 * to come back within `maxCheckIntervalMs` (not when the oldest slot's hold ends, hours away): a call
 * may end any time, and the next try looks again. Each refusal is published once on `oshara:limit`.
 */
async function takeSlot (limiter: SessionLimiter, tracker: SessionTracker | undefined, key: string, log: FastifyBaseLogger, requestId: string, reclaimed = false): Promise<string | undefined> {
  try {
    return await limiter.acquire(key, log)
  } catch (error) {
    if (!(error instanceof OsharaSessionLimitError)) throw error
    if (!reclaimed && tracker !== undefined && error.scope === 'key' && await tracker.reclaim(key)) {
      return await takeSlot(limiter, tracker, key, log, requestId, true)
    }
    throw refusal(error, tracker, requestId)
  }
}

/** The limiter's refusal as the caller gets it: capped with tracking, and published (never the key: it names a user). */
function refusal (error: OsharaSessionLimitError, tracker: SessionTracker | undefined, requestId: string): OsharaSessionLimitError {
  const refused = tracker === undefined
    ? error
    : failure('FST_OSHARA_SESSION_LIMIT', 'reached', { scope: error.scope as 'key' | 'global', waitMs: error.retryAfterMs, lookAgainWithinMs: tracker.retryAfterCapMs, detail: error.detail })
  if (limitChannel.hasSubscribers) {
    limitChannel.publish({ scope: refused.scope, retryAfterMs: refused.retryAfterMs, requestId } satisfies OsharaLimitMessage)
  }
  return refused
}
