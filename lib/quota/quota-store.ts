/**
 * The contract between usage quotas and where usage is counted. `MemoryQuotaStore` (one process)
 * and `RedisQuotaStore` (several instances share one budget) are built in; implement it to count
 * elsewhere. Every method must be atomic with respect to concurrent callers, also across
 * processes for a shared store.
 *
 * Usage is counted per `key` and per window: `window` is an id the plugin derives from the clock
 * (e.g. `d2026-11-25` for a calendar day in UTC), and `ttlMs` is how long that window's counts
 * must be kept (until it is over, plus a margin); after that the store forgets them by itself.
 * Each `consume` that counts and each `record` keeps the window's counts at least its `ttlMs` from
 * then: a later call with a shorter `ttlMs` does not shorten that (the later expiry wins).
 * Sessions count when a session is minted (`consume`, given back by `refund` when minting
 * fails); seconds and cost count when a session ends (`record`), in the window it was minted in.
 */

/** One key's usage in one window. Cost is in micro-dollars (millionths of a US dollar), an integer, so sums are exact. */
export interface QuotaUsage {
  sessions: number
  seconds: number
  costMicros: number
}

/** Budgets for one window; a budget left out is not limited. */
export interface QuotaBudgets {
  sessions?: number | undefined
  seconds?: number | undefined
  costMicros?: number | undefined
}

export interface ConsumeRequest {
  key: string
  window: string
  ttlMs: number
  budgets: QuotaBudgets
}

export type ConsumeResult =
  | { ok: true, usage: QuotaUsage }
  | { ok: false, usage: QuotaUsage, budget: 'sessions' | 'seconds' | 'costMicros' }

export interface QuotaStore {
  /**
   * When the key's usage in `window` is below every budget given (sessions below `sessions`,
   * seconds below `seconds`, cost below `costMicros`), count one more session and answer
   * `ok` with the usage after it; otherwise count nothing and name the first exhausted budget
   * (in the order sessions, seconds, costMicros), with the usage as it is.
   */
  consume (request: ConsumeRequest): Promise<ConsumeResult>
  /** Give back one session counted by `consume` (minting failed). Never below zero. */
  refund (key: string, window: string): Promise<void>
  /**
   * Add an ended session's seconds and cost to the key's usage in `window`. Both are non-negative
   * integers (round a fractional duration before recording); the built-in stores reject others.
   */
  record (key: string, window: string, ended: { seconds: number, costMicros: number }, ttlMs: number): Promise<void>
  /** The key's usage in `window` (zeros when nothing is counted). */
  usage (key: string, window: string): Promise<QuotaUsage>
}
