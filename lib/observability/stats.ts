import type { OsharaClient } from '../client/client.js'
import type { SessionLimiter } from '../limits/limiter.js'
import { MemorySessionStore } from '../limits/memory-store.js'
import type { SessionTracker } from '../tracking/tracker.js'
import type { OsharaStats, OsharaToolOutcome } from '../types.js'

/** A failure whose error has no string `code` (an app's own error) counts under this code. */
export const UNKNOWN_CODE = 'UNKNOWN'
const QUOTA_CODE = 'FST_OSHARA_QUOTA_EXCEEDED'

/**
 * One registration's counters for `fastify.oshara.stats()`: integer increments and a map per
 * error code while serving; the rest (retries, breaker, slots, ended sessions) is read from the
 * client, the limiter's store and the tracker when a snapshot is taken.
 */
export class SessionStats {
  /** Sessions Oshara created (the upstream call succeeded), route and decorator. */
  minted = 0
  readonly #failed = new Map<string, number>()
  /** Tool calls by tool name, then outcome. */
  readonly #tools = new Map<string, Partial<Record<OsharaToolOutcome, number>>>()

  /** A tool was registered: it appears in snapshots with no calls yet. */
  addTool (name: string): void {
    this.#tools.set(name, {})
  }

  /** A call of tool `name` ended with `outcome`. */
  toolCall (name: string, outcome: OsharaToolOutcome): void {
    const counts = this.#tools.get(name) as Partial<Record<OsharaToolOutcome, number>>
    counts[outcome] = (counts[outcome] ?? 0) + 1
  }

  /** A session request (route or decorator) failed with `error`. */
  fail (error: unknown): void {
    const code = (error as { code?: unknown } | null)?.code
    const key = typeof code === 'string' ? code : UNKNOWN_CODE
    this.#failed.set(key, (this.#failed.get(key) ?? 0) + 1)
  }

  snapshot (client: OsharaClient, limiter: SessionLimiter | undefined, tracker: SessionTracker | undefined): OsharaStats {
    const store = limiter?.config.store
    return {
      minted: this.minted,
      failed: Object.fromEntries(this.#failed),
      retries: client.retryCount,
      breakerState: client.breakerState,
      activeSlots: store instanceof MemorySessionStore ? store.size : undefined,
      ended: tracker?.endedCount ?? 0,
      quotaRefusals: this.#failed.get(QUOTA_CODE) ?? 0,
      tools: Object.fromEntries([...this.#tools].map(([name, counts]) => [name, { ...counts }]))
    }
  }
}
