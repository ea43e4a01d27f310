import { caseOfAnswer } from '../failures.js'
import { failure, failureOfAnswer, type OsharaError, type OsharaBadResponseError, type OsharaTimeoutError } from '../errors.js'
import { redactDetail } from './redact.js'

/**
 * Reads what went wrong with an attempt (the status, body and delay of an answer, or the
 * network error) and hands the facts to the failure table (`failures.ts`), which decides the
 * error: its class, message, outcome, `Retry-After` and fix.
 */

/** Failures that happen before any byte of the request reached Oshara: retrying cannot duplicate a session. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN',
  'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT'
])
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/

/** Node gives happy-eyeballs AggregateErrors the code of their first error, so `code` is enough. */
function errorCode (error: unknown): string {
  return String((error as { code?: unknown }).code)
}

export interface ClassifyContext {
  origin: string
  /** The client's `baseUrl`, named in the fixes of an unreachable upstream and of a 404 that may be a wrong path. */
  baseUrl: string
  /** `'session'`: a 404 means the agent (session and appearance endpoints); `'billing'`: the session. */
  endpoint: 'session' | 'billing'
}

/** A network failure (no HTTP answer) to its error: `unreachable` only when the request was certainly not sent. */
export function classifyNetworkError (cause: unknown, baseUrl: string): OsharaError {
  const code = errorCode(cause)
  const situation = NOT_SENT_CODES.has(code) || TLS_CODE.test(code) ? 'unreachable' : 'connection-failed'
  return failure('FST_OSHARA_UNAVAILABLE', situation, { cause, detail: code, words: { baseUrl } })
}

/**
 * Oshara's unknown-agent answer is JSON whose `detail` names the agent (or character); a 404 without
 * one (an HTML page, `{"detail": "Not found."}`) is what any server says of a path it lacks.
 */
const NAMES_THE_AGENT = /agent|character/i

function namesTheAgent (text: string): boolean {
  let detail: unknown
  try {
    detail = (JSON.parse(text) as { detail?: unknown } | null)?.detail
  } catch {}
  return typeof detail === 'string' && NAMES_THE_AGENT.test(detail)
}

/** An attempt's timeout: `requestStarted` false means the request was never written (still connecting, or queued), so it created nothing. */
export function attemptTimeout (timeoutMs: number, requestStarted: boolean): OsharaTimeoutError {
  if (!requestStarted) return failure('FST_OSHARA_TIMEOUT', 'not-sent', { detail: `no connection to send the request on within ${timeoutMs} ms` })
  return failure('FST_OSHARA_TIMEOUT', 'attempt', { detail: `no complete answer within ${timeoutMs} ms` })
}

/**
 * Upstream's own words from an error body: `detail`/`message`/`error` of JSON, else the text;
 * with the call's `secrets` redacted and cut short (see redact.ts).
 */
export function upstreamDetail (text: string, secrets: readonly string[]): string {
  let detail = text
  try {
    const body = JSON.parse(text) as Record<string, unknown> | null
    const words = body?.detail ?? body?.message ?? body?.error
    if (words !== undefined) detail = typeof words === 'string' ? words : JSON.stringify(words)
  } catch {}
  return redactDetail(detail, secrets)
}

/**
 * A non-2xx answer to its error. `serverDelay` is the delay the response asked for, if any;
 * `secrets` are the call's values that must not reach the error's `detail` (the one place an
 * upstream body goes on an error).
 */
export function classifyStatus (status: number, text: string, serverDelay: number | undefined, context: ClassifyContext, secrets: readonly string[]): OsharaError {
  const answer = caseOfAnswer(status, context.endpoint, status === 404 && namesTheAgent(text))
  return failureOfAnswer(answer, {
    upstreamStatus: status,
    detail: upstreamDetail(text, secrets),
    serverDelayMs: serverDelay,
    words: { origin: context.origin, baseUrl: context.baseUrl }
  })
}

export function badResponse (detail: string, status: number): OsharaBadResponseError {
  return failure('FST_OSHARA_BAD_RESPONSE', 'answered', { upstreamStatus: status, detail })
}
