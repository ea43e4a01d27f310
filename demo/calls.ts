/**
 * The demo's memory of calls, per user: the sessions minted for them that have not ended (so the
 * emulator controls act only on a user's own calls) and their last ended calls, for the page's
 * Recent calls panel. In memory, like the rest of the demo; an app would keep ended calls in
 * its database.
 */
import type { OsharaSessionSummary } from '../lib/index.js'

/** How many ended calls are kept per user. */
export const RECENT_CALLS = 10
/** How many transcript lines a recent call keeps, and how long each may be. */
const EXCERPT_LINES = 3
const EXCERPT_CHARS = 120

/** One ended call, as `GET /demo/recent-calls` returns it. */
export interface RecentCall {
  session_id: string
  /** When Oshara finalized the call's summary (ISO time): the end of the call, give or take the summary's delay. */
  ended_at: string | null
  duration_seconds: number | null
  /** USD, the decimal string Oshara sends (e.g. `"0.0125"`). */
  cost_usd: string | null
  /** The first lines of the transcript. */
  transcript: Array<{ role: string, text: string }>
}

export class DemoCalls {
  /** User id → ids of the sessions minted for them and not known to have ended. */
  readonly #open = new Map<string, Set<string>>()
  /** User id → their last ended calls, newest first. */
  readonly #recent = new Map<string, RecentCall[]>()

  /** A session was minted for `userId`. */
  minted (userId: string, sessionId: string): void {
    const open = this.#open.get(userId)
    if (open === undefined) this.#open.set(userId, new Set([sessionId]))
    else open.add(sessionId)
  }

  /** True when `sessionId` is an open call of `userId`. */
  isOpen (userId: string, sessionId: string): boolean {
    return this.#open.get(userId)?.has(sessionId) === true
  }

  /** True when `sessionId` is an open call of `userId`; it is no longer open afterwards. */
  take (userId: string, sessionId: string): boolean {
    const open = this.#open.get(userId)
    if (open === undefined || !open.delete(sessionId)) return false
    if (open.size === 0) this.#open.delete(userId)
    return true
  }

  /** `onSessionEnd`: keeps the call among the user's last `RECENT_CALLS` (once, even if delivered again). */
  ended (userId: string, sessionId: string, summary: OsharaSessionSummary): void {
    this.take(userId, sessionId)
    const others = (this.#recent.get(userId) ?? []).filter((call) => call.session_id !== sessionId)
    this.#recent.set(userId, [recentCall(sessionId, summary), ...others].slice(0, RECENT_CALLS))
  }

  /** The user's last ended calls, newest first. */
  recent (userId: string): RecentCall[] {
    return this.#recent.get(userId) ?? []
  }
}

function recentCall (sessionId: string, summary: OsharaSessionSummary): RecentCall {
  const lines = summary.transcript ?? linesOf(summary.transcript_text ?? '')
  return {
    session_id: sessionId,
    ended_at: summary.finalized_at ?? null,
    duration_seconds: summary.session_duration_seconds ?? null,
    cost_usd: summary.estimated_cost_usd ?? null,
    transcript: lines.slice(0, EXCERPT_LINES).map(({ role, text }) => ({
      role,
      text: text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS - 1)}…` : text
    }))
  }
}

/** `transcript_text` (`role: text` lines) when a summary has no `transcript` array. */
function linesOf (text: string): Array<{ role: string, text: string }> {
  return text.split('\n').filter((line) => line !== '').map((line) => {
    const colon = line.indexOf(': ')
    return colon < 0 ? { role: '', text: line } : { role: line.slice(0, colon), text: line.slice(colon + 2) }
  })
}
