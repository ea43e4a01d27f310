import type { OsharaError } from '../errors.js'
import { FAILURES } from '../failures.js'

// Names, defaults and checks of these options: RETRY_OPTIONS in client/options.ts.
export interface RetryOptions {
  /** Retries after the first attempt. Default 2. */
  retries?: number
  /** Base of the exponential backoff. Default 250. */
  minDelayMs?: number
  /** Cap of the exponential backoff. Default 2000. */
  maxDelayMs?: number
  /** Longest server-requested delay (`Retry-After`) waited for; a longer one fails the call at once. Default 5000. */
  maxRetryAfterMs?: number
  /** Upstream statuses retried. Default `[503]`; adding 500/502/504 accepts duplicate sessions. */
  statusCodes?: number[]
  /** Retry a timeout or reset after the request was sent (may create a duplicate session). Default false. */
  onTimeout?: boolean
  /** Retry a 429 once, when it carries a `Retry-After` within `maxRetryAfterMs` and the deadline. Default false. */
  on429?: boolean
}

export interface RetryPolicy {
  readonly retries: number
  readonly minDelayMs: number
  readonly maxDelayMs: number
  readonly maxRetryAfterMs: number
  readonly statusCodes: ReadonlySet<number>
  readonly onTimeout: boolean
  readonly on429: boolean
}

/** Full jitter: a uniform delay in [0, min(maxDelayMs, minDelayMs * 2^retryIndex)). */
export function backoffDelay (policy: RetryPolicy, retryIndex: number): number {
  return Math.floor(Math.random() * Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** retryIndex))
}

type HeaderValue = string | string[] | undefined

/**
 * The delay a response asks for: `retry-after-ms` (milliseconds), else `Retry-After` as
 * whole or decimal seconds or an HTTP date. Undefined when absent or unreadable.
 */
export function serverDelayMs (headers: Record<string, HeaderValue>, now: number): number | undefined {
  const ms = headers['retry-after-ms']
  if (typeof ms === 'string' && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms))
  const after = headers['retry-after']
  if (typeof after !== 'string') return undefined
  const value = after.trim()
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000)
  // An HTTP date names a day or month; bare numbers (e.g. "-1") are not dates.
  const date = /[A-Za-z]/.test(value) ? Date.parse(value) : Number.NaN
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** Whether a failed attempt may be tried again under `policy`: its code's retry rule (the deadline and count are checked by the caller). */
export function isRetryable (error: OsharaError, policy: RetryPolicy, idempotent: boolean, serverDelay: number | undefined, retried429: boolean): boolean {
  switch (FAILURES[error.code].retry) {
    case 'if-not-created':
      return error.outcome === 'not_created' || idempotent || policy.onTimeout
    case 'if-status-listed':
      return policy.statusCodes.has(error.upstreamStatus as number) || idempotent
    case 'once-with-retry-after':
      return policy.on429 && serverDelay !== undefined && !retried429
    default:
      return false
  }
}
