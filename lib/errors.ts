/**
 * Every failure the plugin or the client reports is an `OsharaError` subclass with one
 * `FST_OSHARA_*` code and the HTTP status the route replies with. Messages are safe to show a
 * browser; the upstream detail and the fix live in `detail` and `fix` for the logs.
 */

/** What is known of the upstream session when a call failed. */
export type OsharaOutcome = 'not_created' | 'unknown'

export interface OsharaErrorDetails {
  /** Status Oshara answered with, when it answered. */
  upstreamStatus?: number | undefined
  /** `'not_created'`: Oshara certainly made no session; `'unknown'`: it may have. */
  outcome?: OsharaOutcome | undefined
  /** When to try again, in milliseconds (sent to the browser as `Retry-After` seconds). */
  retryAfterMs?: number | undefined
  /** Upstream attempts made (0 when the call never reached the network). */
  attempts?: number | undefined
  /** The `X-Request-Id` of the logical call, the same on every attempt. */
  requestId?: string | undefined
  /** Upstream's own words (error body excerpt); logged, never sent to the browser. */
  detail?: string | undefined
  /** What the operator should change; logged, never sent to the browser. */
  fix?: string | undefined
  cause?: unknown
}

export class OsharaError extends Error {
  static readonly code: string = 'FST_OSHARA_ERROR'
  static readonly statusCode: number = 500

  readonly code: string
  readonly statusCode: number
  upstreamStatus: number | undefined
  outcome: OsharaOutcome
  retryAfterMs: number | undefined
  attempts: number
  requestId: string | undefined
  detail: string | undefined
  fix: string | undefined

  constructor (message: string, details: OsharaErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    const type = new.target
    this.name = type.name
    this.code = type.code
    this.statusCode = type.statusCode
    this.upstreamStatus = details.upstreamStatus
    this.outcome = details.outcome ?? 'not_created'
    this.retryAfterMs = details.retryAfterMs
    this.attempts = details.attempts ?? 0
    this.requestId = details.requestId
    this.detail = details.detail
    this.fix = details.fix
  }

  toJSON (): OsharaErrorJSON {
    return {
      name: this.name,
      code: this.code,
      statusCode: this.statusCode,
      message: this.message,
      upstreamStatus: this.upstreamStatus,
      outcome: this.outcome,
      retryAfterMs: this.retryAfterMs,
      attempts: this.attempts,
      requestId: this.requestId
    }
  }
}

export interface OsharaErrorJSON {
  name: string
  code: string
  statusCode: number
  message: string
  upstreamStatus: number | undefined
  outcome: OsharaOutcome
  retryAfterMs: number | undefined
  attempts: number
  requestId: string | undefined
}

/** Wrong plugin or client options; thrown at `register` / `createOsharaClient`. */
export class OsharaInvalidOptionsError extends OsharaError {
  static override readonly code = 'FST_OSHARA_INVALID_OPTIONS'
  static override readonly statusCode = 500
}

/** The browser sent a field it may not set (or a value outside an allow-list). */
export class OsharaFieldNotAllowedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_FIELD_NOT_ALLOWED'
  static override readonly statusCode = 400
  readonly field: string

  constructor (field: string, message: string) {
    super(message)
    this.field = field
  }
}

/** Our own concurrent-session limit (section 6) is reached. */
export class OsharaSessionLimitError extends OsharaError {
  static override readonly code = 'FST_OSHARA_SESSION_LIMIT'
  static override readonly statusCode = 429
}

/** Oshara answered 429: the plan's concurrent-session limit is reached. */
export class OsharaUpstreamLimitError extends OsharaError {
  static override readonly code = 'FST_OSHARA_UPSTREAM_LIMIT'
  static override readonly statusCode = 429
}

/** Oshara answered 403: the configured `origin` is not on the character's `allowed_origins`. */
export class OsharaOriginForbiddenError extends OsharaError {
  static override readonly code = 'FST_OSHARA_ORIGIN_FORBIDDEN'
  static override readonly statusCode = 502
}

/** Oshara answered 404 to a session request: unknown or inactive character slug. */
export class OsharaAgentNotFoundError extends OsharaError {
  static override readonly code = 'FST_OSHARA_AGENT_NOT_FOUND'
  static override readonly statusCode = 502
}

/** Oshara answered 401: the API key is missing, wrong or revoked. */
export class OsharaUnauthorizedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_UNAUTHORIZED'
  static override readonly statusCode = 502
}

/** Oshara answered another 4xx. */
export class OsharaRequestRejectedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_REQUEST_REJECTED'
  static override readonly statusCode = 502
}

/** Oshara answered 5xx (after retries). */
export class OsharaUpstreamError extends OsharaError {
  static override readonly code = 'FST_OSHARA_UPSTREAM_ERROR'
  static override readonly statusCode = 502
}

/** Oshara unreachable (after retries), circuit open, or the limiter store down. */
export class OsharaUnavailableError extends OsharaError {
  static override readonly code = 'FST_OSHARA_UNAVAILABLE'
  static override readonly statusCode = 503
}

/** A per-attempt timeout, or the whole-call deadline, passed. */
export class OsharaTimeoutError extends OsharaError {
  static override readonly code = 'FST_OSHARA_TIMEOUT'
  static override readonly statusCode = 504
}

/** Oshara answered 2xx with a body that is not a valid session (or is too large). */
export class OsharaBadResponseError extends OsharaError {
  static override readonly code = 'FST_OSHARA_BAD_RESPONSE'
  static override readonly statusCode = 502
}

/** The caller's `AbortSignal` fired (for the route: the browser went away). 499: client closed request. */
export class OsharaAbortedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_ABORTED'
  static override readonly statusCode = 499
}

/** No such session: `DELETE {path}/{id}` for a session the key does not hold, or `getSession` 404. */
export class OsharaSessionNotFoundError extends OsharaError {
  static override readonly code = 'FST_OSHARA_SESSION_NOT_FOUND'
  static override readonly statusCode = 404
}

/** The session request the server built (options, `session`, `beforeSession`, decorator input) is invalid. */
export class OsharaInvalidSessionError extends OsharaError {
  static override readonly code = 'FST_OSHARA_INVALID_SESSION'
  static override readonly statusCode = 500
}

/** Builds the register-time error: which option, what is wrong, how to fix it. */
export function invalidOption (option: string, problem: string, fix: string): OsharaInvalidOptionsError {
  return new OsharaInvalidOptionsError(`fastify-oshara-voice: option "${option}" ${problem}. Fix: ${fix}`, { fix })
}
