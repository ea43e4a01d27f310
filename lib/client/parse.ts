import { checkAppearance, type OsharaAppearance } from './appearance.js'
import { badResponse } from './classify.js'
import type { OsharaLogger } from './options.js'
import { checkSessionResponse, type OsharaSession } from './schemas.js'
import {
  checkFormResponses,
  checkSummaryCore,
  checkSummaryEnvelope,
  checkUsageEnvelope,
  type OsharaFormResponse,
  type OsharaSessionSummary,
  type OsharaUsageTotals
} from './summaries.js'
import { warnOfOddFields } from './summary-fields.js'
import type { ValueError } from '@sinclair/typebox/errors'

/**
 * What a 2xx body means: the value of each endpoint, read as Oshara documents it. A parser
 * returns the value or throws `FST_OSHARA_BAD_RESPONSE` (what the transport makes of any throw).
 */
export type Parse<T> = (text: string, status: number) => T

/** A usage page as read: the `total_*` fields and the page's summaries. */
export type UsagePage = OsharaUsageTotals & { sessions: { data: OsharaSessionSummary[] } }

function parseJson (text: string, status: number): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw badResponse('body is not JSON', status)
  }
}

export function parseSession (text: string, status: number): OsharaSession {
  const body = parseJson(text, status)
  if (!checkSessionResponse.Check(body)) {
    const issue = checkSessionResponse.Errors(body).First() as ValueError
    throw badResponse(`not a session: ${issue.path} ${issue.message}`, status)
  }
  const session = body as OsharaSession
  session.expires_in_seconds ??= 3600
  return session
}

/** The `data` of an Oshara envelope (`{ success: true, data }`) whose shape `check` accepts. */
function parseEnvelope<T> (check: { Check: (value: unknown) => boolean }, what: string): Parse<T> {
  return (text, status) => {
    const body = parseJson(text, status)
    if (!check.Check(body)) throw badResponse(`not a billing envelope with success: true and ${what}`, status)
    return (body as { data: T }).data
  }
}

const parseSummary = parseEnvelope<OsharaSessionSummary>(checkSummaryEnvelope, 'a session summary')
const parseSummaryCore = parseEnvelope<OsharaSessionSummary>(checkSummaryCore, 'a session summary with its session_id')
export const parseUsage = parseEnvelope<UsagePage>(checkUsageEnvelope, 'a usage list (total_sessions, sessions.data)')

/** A summary of `sessionId` with every known field as documented. */
export function strictSummaryParser (sessionId: string): Parse<OsharaSessionSummary> {
  return (text, status) => sameSession(parseSummary(text, status), sessionId, status)
}

/** A summary of `sessionId`, whatever its other fields hold (each odd one logged once per process). */
export function tolerantSummaryParser (sessionId: string, log: OsharaLogger): Parse<OsharaSessionSummary> {
  return (text, status) => {
    const summary = sameSession(parseSummaryCore(text, status), sessionId, status)
    warnOfOddFields(summary, log)
    return summary
  }
}

function sameSession (summary: OsharaSessionSummary, sessionId: string, status: number): OsharaSessionSummary {
  if (summary.session_id === sessionId) return summary
  throw badResponse(`the summary is of another session (${summary.session_id})`, status)
}

export function parseAppearance (text: string, status: number): OsharaAppearance {
  const body = parseJson(text, status)
  if (!checkAppearance.Check(body)) throw badResponse('not an appearance object', status)
  return body as OsharaAppearance
}

export function parseFormResponses (text: string, status: number): OsharaFormResponse[] {
  const body = parseJson(text, status)
  if (!checkFormResponses.Check(body)) throw badResponse('not a JSON array of form responses', status)
  return body as OsharaFormResponse[]
}
