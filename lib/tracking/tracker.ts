import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { kTolerant, type OsharaClient, type PluginCallOptions } from '../client/client.js'
import type { OsharaSessionSummary } from '../client/summaries.js'
import { OsharaError } from '../errors.js'
import type { TrackedSession, TrackingSessionStore } from '../limits/store.js'
import { type OsharaSessionEndMessage, publishStoreError, sessionEndChannel } from '../observability/channels.js'
import type { SessionEndContext } from '../types.js'
import type { MaybePromise } from '../maybe-promise.js'

type OnEnded = (key: string | undefined, summary: OsharaSessionSummary) => Promise<void>

export interface TrackerConfig {
  readonly store: TrackingSessionStore
  /** The store is shared by other instances (not in this process's memory): keep looking for their work when idle. */
  readonly shared: boolean
  readonly firstCheckMs: number
  readonly maxCheckIntervalMs: number
  readonly maxTrackMs: number
  readonly concurrency: number
  readonly leaseMs: number
  readonly onSessionEnd: ((summary: OsharaSessionSummary, context: SessionEndContext) => MaybePromise<void>) | undefined
}

/** Tries of `onSessionEnd` for one session before it is given up (logged at error). */
export const MAX_DELIVERIES = 5
/** A key at its limit waits at most this long for its sessions' lookups before the 429. */
export const RECLAIM_BOUND_MS = 2000

/**
 * Follows every minted session until Oshara reports it finalized (Oshara has no webhooks): one
 * timer per registration, `unref()`ed, idle when nothing is tracked. Each due session is
 * claimed from the store (a lease, so that several instances never look up the same session at
 * once and a dead instance's sessions are taken over), looked up, and then rescheduled with a
 * doubling interval, or, once finalized, its slot freed and `onSessionEnd` delivered.
 */
export class SessionTracker {
  readonly owner = randomUUID()
  readonly #config: TrackerConfig
  readonly #client: OsharaClient
  readonly #log: FastifyBaseLogger
  readonly #onEnded: OnEnded | undefined
  readonly #inFlight = new Set<Promise<void>>()
  #timer: NodeJS.Timeout | undefined
  #wakeAt = Number.POSITIVE_INFINITY
  #ticking = false
  /** A wake-up came while a tick ran: tick again when it ends. */
  #again = false
  #closed = false
  #ended = 0

  /** `onEnded` runs once per ended session, before `onSessionEnd` (the quota counts its minutes and cost); it never throws. */
  constructor (config: TrackerConfig, client: OsharaClient, log: FastifyBaseLogger, onEnded?: OnEnded) {
    this.#config = config
    this.#client = client
    this.#log = log
    this.#onEnded = onEnded
  }

  /** Sessions this tracker found ended (each counted once). */
  get endedCount (): number {
    return this.#ended
  }

  /** The longest `Retry-After` of a 429 while sessions are tracked. */
  get retryAfterCapMs (): number {
    return this.#config.maxCheckIntervalMs
  }

  /**
   * The app is ready: with a shared store, look at once for sessions another instance left
   * behind (it died, or this instance replaces it), then every `maxCheckIntervalMs`, without
   * waiting for a first mint here. A store in this process's memory holds nothing yet.
   */
  start (): void {
    if (this.#config.shared) this.#wake(0)
  }

  /** A session was just tracked (by the store's `bind`, or `track` for one without a slot): look it up `firstCheckMs` from now. */
  scheduleFirstCheck (): void {
    this.#wake(this.#config.firstCheckMs)
  }

  /** Tracks a session that holds no slot, reported under `key` and counted under `quotaKey` if given. Never throws: a store failure is logged. */
  async track (sessionId: string, key: string | undefined, quotaKey: string | undefined): Promise<void> {
    try {
      await this.#config.store.track(sessionId, { firstCheckMs: this.#config.firstCheckMs, key, quotaKey })
      this.scheduleFirstCheck()
    } catch (error) {
      publishStoreError('tracking', 'track', error)
      this.#log.warn({ err: error, session_id: sessionId }, 'oshara: session store failed to track a session; onSessionEnd will not come for it')
    }
  }

  /**
   * A key is at its limit: looks up its sessions at once (within `RECLAIM_BOUND_MS`) and frees
   * the slots of those Oshara reports finalized. True when one was finalized (its slot is free).
   */
  async reclaim (key: string): Promise<boolean> {
    const signal = AbortSignal.timeout(RECLAIM_BOUND_MS)
    try {
      const sessionIds = await this.#config.store.sessionsOf(key)
      const freed = await Promise.all(sessionIds.map(async (sessionId) => {
        const summary = await this.#lookup(sessionId, signal).catch(() => undefined)
        if (!isFinalized(summary)) return false
        // False when a tick (here or on another instance) delivered and untracked it meanwhile:
        // its slot is free all the same, so the key may try again.
        await this.#config.store.markEnded(sessionId)
        return true
      }))
      if (!freed.includes(true)) return false
      this.#wake(0)
      return true
    } catch (error) {
      publishStoreError('tracking', 'reclaim', error)
      this.#log.warn({ err: error }, 'oshara: could not look up the sessions of a key at its limit')
      return false
    }
  }

  /** A summary as tracking reads it: only `session_id` and `finalized_at` must be as documented. */
  #lookup (sessionId: string, signal: AbortSignal | undefined): Promise<OsharaSessionSummary> {
    const options: PluginCallOptions = { signal, [kTolerant]: this.#log }
    return this.#client.getSession(sessionId, options)
  }

  /** Stops the timer and waits for the lookups and deliveries in flight (each ends within its deadline). */
  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight)
  }

  /** Runs a tick in `ms` unless one is due sooner. */
  #wake (ms: number): void {
    const at = Date.now() + ms
    if (this.#closed || at >= this.#wakeAt) return
    clearTimeout(this.#timer)
    this.#wakeAt = at
    // #tick catches what it awaits: it never rejects.
    this.#timer = setTimeout(() => { this.#tick() }, ms)
    this.#timer.unref()
  }

  async #tick (): Promise<void> {
    this.#timer = undefined
    this.#wakeAt = Number.POSITIVE_INFINITY
    if (this.#ticking) {
      this.#again = true
      return
    }
    this.#ticking = true
    this.#again = false
    let next: number | undefined
    try {
      next = await this.#claimAndCheck()
    } catch (error) {
      publishStoreError('tracking', 'claimDue', error)
      this.#log.warn({ err: error }, 'oshara: session store failed to hand out tracked sessions; trying again later')
      next = this.#config.firstCheckMs
    }
    this.#ticking = false
    if (this.#again) this.#wake(0)
    else if (next !== undefined) this.#wake(next)
  }

  /** Claims what is due (as many as there is room for) and starts their checks; returns when to look again. */
  async #claimAndCheck (): Promise<number | undefined> {
    const room = this.#config.concurrency - this.#inFlight.size
    // Full: a check ending wakes the timer.
    if (room === 0) return undefined
    const { sessions, nextDueMs } = await this.#config.store.claimDue({ owner: this.owner, leaseMs: this.#config.leaseMs, limit: room })
    for (const session of sessions) this.#start(session)
    if (nextDueMs !== undefined) return nextDueMs
    // Nothing tracked anywhere: a shared store may still get a dead instance's sessions back.
    return this.#config.shared ? this.#config.maxCheckIntervalMs : undefined
  }

  #start (session: TrackedSession): void {
    const check = this.#check(session).catch((error: unknown) => {
      publishStoreError('tracking', 'update', error)
      this.#log.warn({ err: error, session_id: session.sessionId }, 'oshara: session store failed while tracking a session; it is looked up again later')
    }).finally(() => {
      this.#inFlight.delete(check)
      this.#wake(0)
    })
    this.#inFlight.add(check)
  }

  async #check (session: TrackedSession): Promise<void> {
    const { sessionId } = session
    let summary: OsharaSessionSummary
    try {
      summary = await this.#lookup(sessionId, undefined)
    } catch (error) {
      return await this.#lookupFailed(session, error)
    }
    if (!isFinalized(summary)) return await this.#stillRunning(session)
    const store = this.#config.store
    // The slot frees first; the lease (until leaseMs) covers what follows.
    if (!session.ended && !await store.reschedule(sessionId, this.owner, { delayMs: this.#config.leaseMs, ended: true })) return
    if (session.deliveries === 0) {
      this.#ended++
      publishEnd(sessionId, summary)
      await this.#onEnded?.(session.quotaKey, summary)
    }
    if (this.#config.onSessionEnd === undefined) {
      await store.untrack(sessionId, this.owner)
      return
    }
    await this.#deliver(session, summary)
  }

  async #deliver (session: TrackedSession, summary: OsharaSessionSummary): Promise<void> {
    const { sessionId, key } = session
    const store = this.#config.store
    try {
      await (this.#config.onSessionEnd as NonNullable<TrackerConfig['onSessionEnd']>)(summary, { sessionId, key, quotaKey: session.quotaKey })
    } catch (error) {
      const deliveries = session.deliveries + 1
      if (deliveries >= MAX_DELIVERIES) {
        this.#log.error({ err: error, session_id: sessionId, deliveries }, 'oshara: onSessionEnd threw; giving up on this session')
        await store.untrack(sessionId, this.owner)
        return
      }
      this.#log.error({ err: error, session_id: sessionId, deliveries }, 'oshara: onSessionEnd threw; delivering it again later')
      await store.reschedule(sessionId, this.owner, { delayMs: this.#backoff(deliveries), deliveries })
      return
    }
    await store.untrack(sessionId, this.owner)
  }

  async #stillRunning (session: TrackedSession): Promise<void> {
    const { sessionId } = session
    if (session.ageMs >= this.#config.maxTrackMs) {
      this.#log.warn({ session_id: sessionId, trackedMs: session.ageMs },
        'oshara: session not finalized within tracking.maxTrackMs; its slot is freed and onSessionEnd will not come for it')
      await this.#config.store.untrack(sessionId, this.owner)
      return
    }
    const checks = session.checks + 1
    await this.#config.store.reschedule(sessionId, this.owner, { delayMs: this.#backoff(checks), checks })
  }

  async #lookupFailed (session: TrackedSession, error: unknown): Promise<void> {
    const checks = session.checks + 1
    const delayMs = this.#backoff(checks)
    const fields = { session_id: session.sessionId, code: (error as OsharaError).code, upstreamStatus: (error as OsharaError).upstreamStatus, retryInMs: delayMs }
    if (error instanceof OsharaError && error.fix !== undefined) {
      // A refusal (401) needs the operator; an unreachable baseUrl may be a setup mistake or an outage.
      const refused = error.code !== 'FST_OSHARA_UNAVAILABLE'
      this.#log[refused ? 'error' : 'warn']({ ...fields, fix: error.fix },
        `oshara: session lookup ${refused ? 'refused' : 'failed'}; its slot stays held: ${error.fix}`)
    } else {
      this.#log.warn(fields, 'oshara: session lookup failed; its slot stays held, looked up again later')
    }
    await this.#config.store.reschedule(session.sessionId, this.owner, { delayMs, checks })
  }

  /** Doubling from `firstCheckMs`, capped at `maxCheckIntervalMs`. */
  #backoff (tries: number): number {
    return Math.min(this.#config.maxCheckIntervalMs, this.#config.firstCheckMs * 2 ** Math.min(tries, 30))
  }
}

function publishEnd (sessionId: string, summary: OsharaSessionSummary): void {
  if (!sessionEndChannel.hasSubscribers) return
  const seconds = summary.session_duration_seconds
  // A decimal string, e.g. "0.0583"; null until Oshara has computed it.
  const cost = Number.parseFloat(String(summary.estimated_cost_usd))
  sessionEndChannel.publish({
    sessionId,
    durationSeconds: typeof seconds === 'number' ? seconds : undefined,
    costUsd: Number.isFinite(cost) ? cost : undefined
  } satisfies OsharaSessionEndMessage)
}

/** Oshara sets `finalized_at` (a time) once the call is over and its summary computed; anything else is not an end. */
function isFinalized (summary: OsharaSessionSummary | undefined): boolean {
  const finalizedAt: unknown = summary?.finalized_at
  return typeof finalizedAt === 'string' && !Number.isNaN(Date.parse(finalizedAt))
}
