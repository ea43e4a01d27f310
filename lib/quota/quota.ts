import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { callbackFailure } from '../app-callback.js'
import type { OsharaSessionSummary } from '../client/summaries.js'
import { failure } from '../errors.js'
import { storeFailure, withTimeout } from '../limits/store-call.js'
import { type OsharaQuotaMessage, publishStoreError, quotaChannel } from '../observability/channels.js'
import { MemoryQuotaStore } from './memory-quota-store.js'
import type { ConsumeResult, QuotaBudgets, QuotaStore, QuotaUsage } from './quota-store.js'
import { type QuotaWindow, type WindowSpan, windowAt } from './window.js'
import type { MaybePromise } from '../maybe-promise.js'

/** A budget: a number, or the request's own (its plan's). */
export type QuotaBudget = number | ((request: FastifyRequest) => MaybePromise<number>)

export interface QuotaConfig {
  readonly store: QuotaStore
  readonly window: QuotaWindow
  readonly sessions: QuotaBudget | undefined
  readonly minutes: QuotaBudget | undefined
  readonly costUsd: QuotaBudget | undefined
  readonly onStoreError: 'deny' | 'allow'
  readonly storeTimeoutMs: number
}

/** What `fastify.oshara.usage(key)` resolves to: the key's use of the current window. */
export interface OsharaQuotaUsage {
  sessions: number
  minutes: number
  costUsd: number
  /** When the window ends and the budgets are whole again (ISO time). */
  resetsAt: string
}

/** A session counted against a key's budget: given back if minting fails. */
export interface QuotaTicket {
  readonly key: string
  readonly span: WindowSpan
  readonly budgets: QuotaBudgets
  readonly usage: QuotaUsage
}

/** Counts are kept this long after their window ends: seconds and cost of calls still running at the reset land in it. */
const KEEP_AFTER_WINDOW_MS = 24 * 60 * 60 * 1000
const WHEN: Record<string, string> = { day: 'today', month: 'this month' }
const WHAT = { sessions: 'calls', seconds: 'voice minutes', costMicros: 'voice usage' } as const
/** A store's budget by the option's name. */
const BUDGET = { sessions: 'sessions', seconds: 'minutes', costMicros: 'costUsd' } as const

/** US dollars (a number, or a decimal string such as Oshara's `"0.0583"`) to whole micro-dollars. */
export function usdToMicros (value: unknown): number {
  const amount = typeof value === 'string' ? Number.parseFloat(value) : value
  return typeof amount === 'number' && Number.isFinite(amount) && amount > 0 ? Math.round(amount * 1_000_000) : 0
}

/**
 * Usage quotas per key: sessions counted at mint, minutes and cost when a session ends (from
 * its summary), per calendar day or month (UTC) or fixed windows. Checked before the upstream
 * call and before a concurrency slot is taken; a failed mint is given back.
 */
export class UsageQuota {
  readonly config: QuotaConfig
  /** Undefined for the in-process store, which cannot hang. */
  readonly #timeoutMs: number | undefined
  /** The budgets when none is a function of the request: the same for every request, made once. */
  readonly #fixedBudgets: QuotaBudgets | undefined
  #window: WindowSpan | undefined

  constructor (config: QuotaConfig) {
    this.config = config
    this.#timeoutMs = config.store instanceof MemoryQuotaStore ? undefined : config.storeTimeoutMs
    const { sessions, minutes, costUsd } = config
    if (typeof sessions !== 'function' && typeof minutes !== 'function' && typeof costUsd !== 'function') {
      this.#fixedBudgets = Object.freeze(budgetsOf(sessions, minutes, costUsd))
    }
  }

  /** Minutes or cost are budgeted: sessions must be tracked until they end. */
  get needsTracking (): boolean {
    return this.config.minutes !== undefined || this.config.costUsd !== undefined
  }

  /**
   * Counts one session for the request's key. Resolves to the ticket, or undefined when the
   * store failed and `onStoreError` is `'allow'`. Rejects with `FST_OSHARA_QUOTA_EXCEEDED`, or
   * `FST_OSHARA_UNAVAILABLE` when the store failed and `'deny'`.
   */
  async take (request: FastifyRequest, key: string): Promise<QuotaTicket | undefined> {
    const budgets = this.#fixedBudgets ?? await this.#budgets(request)
    const span = this.#currentWindow(Date.now())
    let result: ConsumeResult
    try {
      result = await withTimeout(this.config.store.consume({ key, window: span.id, ttlMs: this.#ttl(span), budgets }), this.#timeoutMs)
    } catch (cause) {
      publishStoreError('quota', 'consume', cause)
      return this.#storeFailed(cause, request.log)
    }
    if (result.ok) return { key, span, budgets, usage: result.usage }
    const error = failure('FST_OSHARA_QUOTA_EXCEEDED', 'used-up', {
      waitMs: span.resetsAt - Date.now(),
      detail: `${result.budget} budget used up`,
      words: { budget: WHAT[result.budget], when: WHEN[this.config.window] ?? 'for now' }
    })
    // The key is left out of the message: it names a user.
    if (quotaChannel.hasSubscribers) {
      quotaChannel.publish({ budget: BUDGET[result.budget], windowId: span.id, retryAfterMs: error.retryAfterMs as number, requestId: String(request.id) } satisfies OsharaQuotaMessage)
    }
    throw error
  }

  /** A failed mint: the session does not count. Never throws: a failure is logged. */
  async giveBack (ticket: QuotaTicket, log: FastifyBaseLogger): Promise<void> {
    try {
      await withTimeout(this.config.store.refund(ticket.key, ticket.span.id), this.#timeoutMs)
    } catch (cause) {
      publishStoreError('quota', 'refund', cause)
      log.warn(storeFailure(cause), 'oshara: quota store failed to give back a session that was not minted')
    }
  }

  /** A session ended: its seconds and cost count in the window it started in. Never throws: a failure is logged. */
  async record (key: string, summary: OsharaSessionSummary, log: FastifyBaseLogger): Promise<void> {
    const started = Date.parse(String(summary.created_at))
    const span = windowAt(this.config.window, Number.isNaN(started) ? Date.now() : started)
    const ended = { seconds: Math.max(0, Math.ceil(Number(summary.session_duration_seconds) || 0)), costMicros: usdToMicros(summary.estimated_cost_usd) }
    try {
      await withTimeout(this.config.store.record(key, span.id, ended, this.#ttl(span)), this.#timeoutMs)
    } catch (cause) {
      publishStoreError('quota', 'record', cause)
      log.error({ ...storeFailure(cause), session_id: summary.session_id, ...ended }, 'oshara: quota store failed to count an ended session\'s minutes and cost')
    }
  }

  /** The key's use of the current window. Rejects with `FST_OSHARA_UNAVAILABLE` when the store fails. */
  async usage (key: string): Promise<OsharaQuotaUsage> {
    const span = this.#currentWindow(Date.now())
    let usage: QuotaUsage
    try {
      usage = await withTimeout(this.config.store.usage(key, span.id), this.#timeoutMs)
    } catch (cause) {
      publishStoreError('quota', 'usage', cause)
      throw failure('FST_OSHARA_UNAVAILABLE', 'usage-store-down', { cause })
    }
    return { sessions: usage.sessions, minutes: usage.seconds / 60, costUsd: usage.costMicros / 1_000_000, resetsAt: new Date(span.resetsAt).toISOString() }
  }

  /**
   * What is left, in the IETF `RateLimit-Policy` / `RateLimit` header fields: one item per
   * budget (`"sessions"`, `"minutes"`, `"cost"`), `q` the budget, `r` what is left, `t` seconds until the reset.
   */
  sendRemaining (reply: FastifyReply, ticket: QuotaTicket): void {
    const { budgets, usage, span } = ticket
    const windowSeconds = Math.round(span.lengthMs / 1000)
    const resetSeconds = Math.max(0, Math.ceil((span.resetsAt - Date.now()) / 1000))
    const policies: string[] = []
    const left: string[] = []
    const add = (name: string, budget: number, remaining: number): void => {
      policies.push(`"${name}";q=${budget};w=${windowSeconds}`)
      left.push(`"${name}";r=${Math.max(0, remaining)};t=${resetSeconds}`)
    }
    if (budgets.sessions !== undefined) add('sessions', budgets.sessions, budgets.sessions - usage.sessions)
    if (budgets.seconds !== undefined) add('minutes', budgets.seconds / 60, Math.floor((budgets.seconds - usage.seconds) / 60))
    if (budgets.costMicros !== undefined) add('cost', budgets.costMicros / 1_000_000, (budgets.costMicros - usage.costMicros) / 1_000_000)
    reply.header('ratelimit-policy', policies.join(', '))
    reply.header('ratelimit', left.join(', '))
  }

  async #budgets (request: FastifyRequest): Promise<QuotaBudgets> {
    const { sessions, minutes, costUsd } = this.config
    let step = 'quota.sessions'
    try {
      const sessionsBudget = sessions === undefined ? undefined : await budgetOf(sessions, request)
      step = 'quota.minutes'
      const minutesBudget = minutes === undefined ? undefined : await budgetOf(minutes, request)
      step = 'quota.costUsd'
      return budgetsOf(sessionsBudget, minutesBudget, costUsd === undefined ? undefined : await budgetOf(costUsd, request))
    } catch (error) {
      throw callbackFailure(step, error, request.log)
    }
  }

  /** The window of `now`, computed once per window rather than per request. */
  #currentWindow (now: number): WindowSpan {
    const span = this.#window
    if (span !== undefined && now < span.resetsAt && now >= span.resetsAt - span.lengthMs) return span
    this.#window = windowAt(this.config.window, now)
    return this.#window
  }

  #ttl (span: WindowSpan): number {
    return Math.max(1, span.resetsAt - Date.now()) + KEEP_AFTER_WINDOW_MS
  }

  #storeFailed (cause: unknown, log: FastifyBaseLogger): undefined {
    if (this.config.onStoreError === 'allow') {
      log.warn(storeFailure(cause), 'oshara: quota store failed; serving without a quota (onStoreError: allow)')
      return undefined
    }
    log.error(storeFailure(cause), 'oshara: quota store failed; refusing the session (onStoreError: deny)')
    throw failure('FST_OSHARA_UNAVAILABLE', 'store-down', { cause })
  }
}

/** Budgets in the store's units (seconds, micro-dollars) from the options' (sessions, minutes, US dollars). */
function budgetsOf (sessions: number | undefined, minutes: number | undefined, costUsd: number | undefined): QuotaBudgets {
  const budgets: QuotaBudgets = {}
  if (sessions !== undefined) budgets.sessions = sessions
  if (minutes !== undefined) budgets.seconds = Math.round(minutes * 60)
  if (costUsd !== undefined) budgets.costMicros = usdToMicros(costUsd)
  return budgets
}

async function budgetOf (budget: QuotaBudget, request: FastifyRequest): Promise<number> {
  const value = typeof budget === 'number' ? budget : await budget(request)
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new TypeError(`a quota budget must be a number >= 0, got ${String(value)}`)
  return value
}
