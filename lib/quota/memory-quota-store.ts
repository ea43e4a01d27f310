import { performance } from 'node:perf_hooks'
import type { ConsumeRequest, ConsumeResult, QuotaStore, QuotaUsage } from './quota-store.js'

/** One key's usage in one window, and until when it is kept. */
interface Counts extends QuotaUsage {
  readonly id: string
  expiresAt: number
}

/** A due time and the counts it was taken from: `at` is earlier than `counts.expiresAt` once that was extended. */
interface Due {
  readonly at: number
  readonly counts: Counts
}

/** A binary min-heap of due times, earliest first. */
class DueHeap {
  readonly #items: Due[] = []

  first (): Due | undefined {
    return this.#items[0]
  }

  push (item: Due): void {
    const items = this.#items
    let index = items.length
    while (index > 0) {
      const parent = (index - 1) >> 1
      if ((items[parent] as Due).at <= item.at) break
      items[index] = items[parent] as Due
      index = parent
    }
    items[index] = item
  }

  pop (): void {
    const items = this.#items
    const last = items.pop() as Due
    if (items.length === 0) return
    let index = 0
    for (;;) {
      let child = 2 * index + 1
      const right = items[child + 1]
      if (right !== undefined && right.at < (items[child] as Due).at) child++
      const earlier = items[child]
      if (earlier === undefined || earlier.at >= last.at) break
      items[index] = earlier
      index = child
    }
    items[index] = last
  }
}

/**
 * The default `QuotaStore`: usage in this process's memory, so budgets hold per process (use
 * `RedisQuotaStore` when several app instances share one budget).
 *
 * Layout: the counts of each key in each window in one map, under `${window}\0${key}`, plus a
 * min-heap holding one due time per counts, when they may be forgotten. Extending the expiry only
 * moves `expiresAt`; every call first takes the due times that have come from the top of the heap,
 * forgets those counts whose `expiresAt` has come too, and puts the others back at their
 * `expiresAt`. So no timer runs per key, and nothing is kept for a window once it is over and the
 * store is next used. Cost per call, with `n` keys counted in live windows: O(1) for counts that
 * exist, O(log n) for new ones, plus O(log n) for each due time taken (at most one per counts
 * and per time its expiry was extended). Time is `performance.now()` (monotonic).
 */
export class MemoryQuotaStore implements QuotaStore {
  readonly #counts = new Map<string, Counts>()
  readonly #due = new DueHeap()

  /** Keys counted in live windows, all windows together. */
  get size (): number {
    this.#dropExpired()
    return this.#counts.size
  }

  async consume ({ key, window, ttlMs, budgets }: ConsumeRequest): Promise<ConsumeResult> {
    const now = this.#dropExpired()
    const counts = this.#counts.get(idOf(key, window))
    const usage = counts === undefined ? { sessions: 0, seconds: 0, costMicros: 0 } : copy(counts)
    if (!below(usage.sessions, budgets.sessions)) return { ok: false, usage, budget: 'sessions' }
    if (!below(usage.seconds, budgets.seconds)) return { ok: false, usage, budget: 'seconds' }
    if (!below(usage.costMicros, budgets.costMicros)) return { ok: false, usage, budget: 'costMicros' }
    const kept = this.#keep(counts, key, window, now, ttlMs)
    kept.sessions++
    return { ok: true, usage: copy(kept) }
  }

  async refund (key: string, window: string): Promise<void> {
    this.#dropExpired()
    const counts = this.#counts.get(idOf(key, window))
    if (counts !== undefined && counts.sessions > 0) counts.sessions--
  }

  async record (key: string, window: string, { seconds, costMicros }: { seconds: number, costMicros: number }, ttlMs: number): Promise<void> {
    checkAmount('seconds', seconds)
    checkAmount('costMicros', costMicros)
    const now = this.#dropExpired()
    const counts = this.#keep(this.#counts.get(idOf(key, window)), key, window, now, ttlMs)
    counts.seconds += seconds
    counts.costMicros += costMicros
  }

  async usage (key: string, window: string): Promise<QuotaUsage> {
    this.#dropExpired()
    const counts = this.#counts.get(idOf(key, window))
    return counts === undefined ? { sessions: 0, seconds: 0, costMicros: 0 } : copy(counts)
  }

  /** The counts, created when missing, kept at least `ttlMs` from now (a later expiry is kept). */
  #keep (counts: Counts | undefined, key: string, window: string, now: number, ttlMs: number): Counts {
    const expiresAt = now + durationMs(ttlMs)
    if (counts === undefined) {
      const created: Counts = { id: idOf(key, window), sessions: 0, seconds: 0, costMicros: 0, expiresAt }
      this.#counts.set(created.id, created)
      this.#due.push({ at: expiresAt, counts: created })
      return created
    }
    if (expiresAt > counts.expiresAt) counts.expiresAt = expiresAt
    return counts
  }

  /** Forgets the counts whose time is up; returns the time it compared with. */
  #dropExpired (): number {
    const now = performance.now()
    for (let due = this.#due.first(); due !== undefined && due.at <= now; due = this.#due.first()) {
      this.#due.pop()
      const { counts } = due
      if (counts.expiresAt <= now) this.#counts.delete(counts.id)
      else this.#due.push({ at: counts.expiresAt, counts })
    }
    return now
  }
}

function idOf (key: string, window: string): string {
  return `${window}\0${key}`
}

function copy ({ sessions, seconds, costMicros }: QuotaUsage): QuotaUsage {
  return { sessions, seconds, costMicros }
}

/** True when `used` is below `budget`; a budget left out is not limited. */
function below (used: number, budget: number | undefined): boolean {
  return budget === undefined || used < budget
}

/** Whole milliseconds, at least 1, as Redis keeps them. */
function durationMs (ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs))
}

/** Throws unless `value` is an amount `record` can add exactly (shared with `RedisQuotaStore`). */
export function checkAmount (name: 'seconds' | 'costMicros', value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`QuotaStore.record: ${name} must be a non-negative integer, got ${String(value)}`)
  }
}
