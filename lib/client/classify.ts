import {
  OsharaAgentNotFoundError,
  OsharaBadResponseError,
  type OsharaError,
  OsharaOriginForbiddenError,
  OsharaRequestRejectedError,
  OsharaSessionNotFoundError,
  OsharaTimeoutError,
  OsharaUnauthorizedError,
  OsharaUnavailableError,
  OsharaUpstreamError,
  OsharaUpstreamLimitError
} from '../errors.js'

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
  /** `'session'`: a 404 means the agent; `'billing'`: the session. */
  endpoint: 'session' | 'billing'
}

/** A network failure (no HTTP answer) to its error; `'not_created'` only when the request was certainly not sent. */
export function classifyNetworkError (cause: unknown): OsharaError {
  const code = errorCode(cause)
  if (NOT_SENT_CODES.has(code) || TLS_CODE.test(code)) {
    return new OsharaUnavailableError('The voice service is unreachable. Try again shortly.', {
      cause, outcome: 'not_created', retryAfterMs: DEFAULT_RETRY_AFTER_MS, detail: code
    })
  }
  return new OsharaUnavailableError('The connection to the voice service failed. Try again shortly.', {
    cause, outcome: 'unknown', retryAfterMs: DEFAULT_RETRY_AFTER_MS, detail: code
  })
}

export function attemptTimeout (timeoutMs: number): OsharaTimeoutError {
  return new OsharaTimeoutError('The voice service did not answer in time. Try again.', {
    outcome: 'unknown', detail: `no complete answer within ${timeoutMs} ms`
  })
}

/** Upstream's own words from an error body: `detail`/`message`/`error` of JSON, else the text, cut short. */
export function upstreamDetail (text: string): string {
  let detail = text
  try {
    const body = JSON.parse(text) as Record<string, unknown> | null
    const words = body?.detail ?? body?.message ?? body?.error
    if (words !== undefined) detail = typeof words === 'string' ? words : JSON.stringify(words)
  } catch {}
  return detail.slice(0, 500)
}

/** A non-2xx status to its error. `serverDelay` is the delay the response asked for, if any. */
export function classifyStatus (status: number, text: string, serverDelay: number | undefined, context: ClassifyContext): OsharaError {
  const details = { upstreamStatus: status, detail: upstreamDetail(text) }
  if (status === 429) {
    return new OsharaUpstreamLimitError('Too many active voice sessions. Try again later.', {
      ...details, retryAfterMs: serverDelay ?? DEFAULT_RETRY_AFTER_MS
    })
  }
  if (status === 401) {
    return new OsharaUnauthorizedError('The voice service refused our credentials.', {
      ...details, fix: 'Set the apiKey option to a valid Oshara API key (sk_...), or remove it.'
    })
  }
  if (status === 403) {
    return new OsharaOriginForbiddenError('The voice service refused this site.', {
      ...details,
      fix: `Add ${context.origin} to the character's allowed_origins (Oshara dashboard, or PATCH /api/ai-characters/{slug}/), or set the origin option to an allowed origin.`
    })
  }
  if (status === 404 && context.endpoint === 'billing') {
    return new OsharaSessionNotFoundError('No such voice session.', details)
  }
  if (status === 404) {
    return new OsharaAgentNotFoundError('This voice agent is not available.', {
      ...details, fix: 'Check the agent slug (the agent option, or agents) against the Oshara dashboard, and that the character is active.'
    })
  }
  if (status >= 400 && status < 500) {
    return new OsharaRequestRejectedError('The voice service rejected the session request.', details)
  }
  if (status >= 500) {
    return new OsharaUpstreamError('The voice service failed. Try again shortly.', {
      ...details, outcome: status === 503 ? 'not_created' : 'unknown', retryAfterMs: serverDelay
    })
  }
  return new OsharaBadResponseError('The voice service sent an unexpected answer.', { ...details, outcome: 'unknown' })
}

export function badResponse (detail: string, status: number): OsharaBadResponseError {
  return new OsharaBadResponseError('The voice service sent an unexpected answer.', {
    upstreamStatus: status, outcome: 'unknown', detail
  })
}
