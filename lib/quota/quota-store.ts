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

/**
 * The contract between usage quotas and where usage is counted. `MemoryQuotaStore` (one process)
 * and `RedisQuotaStore` (several instances share one budget) are built in; implement it to count
 * elsewhere, and check it with `quotaStoreContract` (`fastify-oshara-voice/testing`). Every method
 * must be atomic with respect to concurrent callers, also across processes for a shared store.
 *
 * Usage is counted per `key` and per window: `window` is an id the plugin derives from the clock
 * (e.g. `d2026-11-25` for a calendar day in UTC), and `ttlMs` is how long that window's counts must
 * be kept (until it is over, plus a margin). Sessions count when a session is minted (`consume`,
 * given back by `refund` when minting fails); seconds and cost count when a session ends
 * (`record`), in the window it was minted in.
 *
 * The counts of one key in one window are in one of two states:
 * - **none**: never counted, or forgotten; they read as zeros;
 * - **kept** until a time: `{ sessions, seconds, costMicros }`, exact integers (cost in
 *   micro-dollars), forgotten by the store itself at that time.
 * Keys and windows are counted apart: no call changes the counts of another key or window.
 *
 * | call | none | kept | answers | cases |
 * | --- | --- | --- | --- | --- |
 * | `consume({ key, window, ttlMs, budgets })` | as kept with zeros | when every budget given is above the usage (`sessions` below `budgets.sessions`, and so on; a budget left out is not limited): one more session, kept at least `ttlMs` from now (a later time it had stays); else nothing changes | `{ ok: true, usage }` with the usage after it; else `{ ok: false, usage, budget }`: the usage as it is and the first exhausted budget, in the order sessions, seconds, costMicros | Q1 Q2 Q3 Q4 Q6 Q7 Q8 |
 * | `refund(key, window)` | nothing | one session less, never below zero; seconds, cost and the time kept unchanged | nothing | Q5 Q6 Q12 |
 * | `record(key, window, { seconds, costMicros }, ttlMs)` | as kept with zeros | seconds and cost added, sums exact; kept at least `ttlMs` from now (a later time it had stays) | nothing | Q3 Q9 Q10 Q13 |
 * | `usage(key, window)` (read only) | — | — | the counts; zeros when none | Q6 Q7 Q9 |
 * | time passes | — | none, once the time kept has come | — | Q11 Q12 Q13 |
 *
 * `record` takes non-negative integers (round a fractional duration before recording); the built-in
 * stores reject others.
 *
 * Cases of `quotaStoreContract`:
 * - Q1: "consume counts sessions up to the sessions budget, then refuses naming it, with the usage unchanged"
 * - Q2: "budgets left out are not limited"
 * - Q3: "the seconds and costMicros budgets refuse once record reaches them"
 * - Q4: "the first exhausted budget is named, in the order sessions, seconds, costMicros"
 * - Q5: "refund gives one session back, never below zero, and leaves seconds and cost alone"
 * - Q6: "keys and windows are counted apart"
 * - Q7: "usage of an unknown key or window is zeros"
 * - Q8: "100 parallel consumes with a sessions budget of 7: exactly 7 are counted"
 * - Q9: "record adds seconds and cost, and usage shows them"
 * - Q10: "sums stay exact integers: 100 parallel records, and amounts near 2^53"
 * - Q11: "a window's counts are forgotten ttlMs after they were counted"
 * - Q12: "a refund does not keep the counts longer"
 * - Q13: "a longer ttlMs keeps the counts longer; a later, shorter one does not shorten it"
 */
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
