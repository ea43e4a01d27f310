/** A quota window: a calendar day or month in UTC, or fixed windows of a number of milliseconds. */
export type QuotaWindow = 'day' | 'month' | number

export interface WindowSpan {
  /** Names the window in the store, e.g. `d2026-11-25`, `m2026-11`, `w60000:29475345`. */
  id: string
  /** When it ends (epoch ms): when its budgets are whole again. */
  resetsAt: number
  /** Its length in milliseconds (a month's varies). */
  lengthMs: number
}

const DAY_MS = 24 * 60 * 60 * 1000

/** The window that holds `at` (epoch ms). */
export function windowAt (window: QuotaWindow, at: number): WindowSpan {
  if (typeof window === 'number') {
    const index = Math.floor(at / window)
    return { id: `w${window}:${index}`, resetsAt: (index + 1) * window, lengthMs: window }
  }
  const date = new Date(at)
  const year = date.getUTCFullYear()
  const month = date.getUTCMonth()
  if (window === 'month') {
    const start = Date.UTC(year, month, 1)
    const resetsAt = Date.UTC(year, month + 1, 1)
    return { id: `m${new Date(start).toISOString().slice(0, 7)}`, resetsAt, lengthMs: resetsAt - start }
  }
  const start = Date.UTC(year, month, date.getUTCDate())
  return { id: `d${new Date(start).toISOString().slice(0, 10)}`, resetsAt: start + DAY_MS, lengthMs: DAY_MS }
}
