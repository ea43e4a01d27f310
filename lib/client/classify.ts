import { codeOfStatus, FAILURES, type FailureRow } from '../failures.js'
import {
  OsharaAgentNotFoundError,
  OsharaBadResponseError,
  type OsharaError,
  type OsharaErrorDetails,
  OsharaOriginForbiddenError,
  OsharaRequestRejectedError,
  OsharaSessionNotFoundError,
  OsharaTimeoutError,
  OsharaUnauthorizedError,
  OsharaUnavailableError,
  OsharaUpstreamError,
  OsharaUpstreamLimitError
} from '../errors.js'
import { redactDetail } from './redact.js'

/** `Retry-After` used when Oshara or the network gives none: upstream 429 and unreachable. */
export const DEFAULT_RETRY_AFTER_MS = 5000

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

/** A network failure (no HTTP answer) to its error; `'not_created'` only when the request was certainly not sent. */
export function classifyNetworkError (cause: unknown, baseUrl: string): OsharaError {
  const code = errorCode(cause)
  const fix = `Check that baseUrl (${baseUrl}) is the Oshara API root and that this server can reach it (DNS, firewall, proxy).`
  if (NOT_SENT_CODES.has(code) || TLS_CODE.test(code)) {
    return new OsharaUnavailableError('The voice service is unreachable; try again shortly', {
      cause, outcome: 'not_created', retryAfterMs: DEFAULT_RETRY_AFTER_MS, detail: code, fix
    })
  }
  return new OsharaUnavailableError('The connection to the voice service failed; try again shortly', {
    cause, outcome: 'unknown', retryAfterMs: DEFAULT_RETRY_AFTER_MS, detail: code, fix
  })
}

/**
 * Oshara's unknown-agent answer is JSON whose `detail` names the agent (or character); a 404 without
 * one (an HTML page, `{"detail": "Not found."}`) is what any server says of a path it lacks.
 */
const NAMES_THE_AGENT = /agent|character/i

function agentNotFoundFix (text: string, rowFix: string, context: ClassifyContext): string {
  let detail: unknown
  try {
    detail = (JSON.parse(text) as { detail?: unknown } | null)?.detail
  } catch {}
  if (typeof detail === 'string' && NAMES_THE_AGENT.test(detail)) return rowFix
  return `Check the agent slug (the agent option, or agents), or baseUrl (${context.baseUrl}): the 404 does not say the agent is unknown, as a wrong API root would answer.`
}

export function attemptTimeout (timeoutMs: number): OsharaTimeoutError {
  return new OsharaTimeoutError('The voice service did not answer in time. Try again.', {
    outcome: 'unknown', detail: `no complete answer within ${timeoutMs} ms`
  })
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

type StatusCode = 'FST_OSHARA_UPSTREAM_LIMIT' | 'FST_OSHARA_UNAUTHORIZED' | 'FST_OSHARA_ORIGIN_FORBIDDEN' | 'FST_OSHARA_SESSION_NOT_FOUND' |
  'FST_OSHARA_AGENT_NOT_FOUND' | 'FST_OSHARA_REQUEST_REJECTED' | 'FST_OSHARA_UPSTREAM_ERROR' | 'FST_OSHARA_BAD_RESPONSE'

/** The error class and safe message of each code an upstream status can map to. */
const STATUS_ERRORS: Record<StatusCode, [new (message: string, details: OsharaErrorDetails) => OsharaError, string]> = {
  FST_OSHARA_UPSTREAM_LIMIT: [OsharaUpstreamLimitError, 'Too many active voice sessions. Try again later.'],
  FST_OSHARA_UNAUTHORIZED: [OsharaUnauthorizedError, 'The voice service refused our credentials.'],
  FST_OSHARA_ORIGIN_FORBIDDEN: [OsharaOriginForbiddenError, 'The voice service refused this site.'],
  FST_OSHARA_SESSION_NOT_FOUND: [OsharaSessionNotFoundError, 'No such voice session.'],
  FST_OSHARA_AGENT_NOT_FOUND: [OsharaAgentNotFoundError, 'This voice agent is not available.'],
  FST_OSHARA_REQUEST_REJECTED: [OsharaRequestRejectedError, 'The voice service rejected the session request.'],
  FST_OSHARA_UPSTREAM_ERROR: [OsharaUpstreamError, 'The voice service failed. Try again shortly.'],
  FST_OSHARA_BAD_RESPONSE: [OsharaBadResponseError, 'The voice service sent an unexpected answer.']
}

/**
 * A non-2xx status to its error (`codeOfStatus` in the failure table). `serverDelay` is the
 * delay the response asked for, if any; `secrets` are the call's values that must not reach
 * the error's `detail` (the one place an upstream body goes on an error).
 */
export function classifyStatus (status: number, text: string, serverDelay: number | undefined, context: ClassifyContext, secrets: readonly string[]): OsharaError {
  const code = codeOfStatus(status, context.endpoint) as StatusCode
  const [ErrorClass, message] = STATUS_ERRORS[code]
  const row: FailureRow = FAILURES[code]
  const fix = row.fix?.replace('{origin}', context.origin)
  return new ErrorClass(message, {
    upstreamStatus: status,
    detail: upstreamDetail(text, secrets),
    fix: code === 'FST_OSHARA_AGENT_NOT_FOUND' ? agentNotFoundFix(text, fix as string, context) : fix,
    // A 503 is the server refusing the work: certainly not created. Other rows keep their outcome.
    outcome: status === 503 ? 'not_created' : undefined,
    retryAfterMs: retryAfterOf(code, serverDelay)
  })
}

/** A 429 always says when to come back; a 5xx only when the server did. */
function retryAfterOf (code: StatusCode, serverDelay: number | undefined): number | undefined {
  if (code === 'FST_OSHARA_UPSTREAM_LIMIT') return serverDelay ?? DEFAULT_RETRY_AFTER_MS
  return code === 'FST_OSHARA_UPSTREAM_ERROR' ? serverDelay : undefined
}

export function badResponse (detail: string, status: number): OsharaBadResponseError {
  return new OsharaBadResponseError('The voice service sent an unexpected answer.', {
    upstreamStatus: status, outcome: 'unknown', detail
  })
}
