import { FAILURES, type OsharaErrorCode, type OsharaOutcome } from './failures.js'

/**
 * Every failure the plugin or the client reports is an `OsharaError` subclass with one
 * `FST_OSHARA_*` code; its status, default outcome, retry and breaker rules are the code's row
 * in `failures.ts`. Messages are safe to show a browser; the upstream detail and the fix live
 * in `detail` and `fix` for the logs.
 */

export type { OsharaErrorCode, OsharaOutcome }

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
  static readonly code: OsharaErrorCode = 'FST_OSHARA_ERROR'

  /** The status the route replies with (the code's row in the failure table). */
  static get statusCode (): number {
    return FAILURES[this.code].status
  }

  readonly code: OsharaErrorCode
  readonly statusCode: number
  upstreamStatus: number | undefined
  outcome: OsharaOutcome
  retryAfterMs: number | undefined
  attempts: number
  requestId: string | undefined
  detail: string | undefined
  fix: string | undefined

  constructor (message: string, details: OsharaErrorDetails = {}) {
    // Loggers print a cause's message after ours, joined by ': ' (pino's err serializer): no '.:' glue.
    super(details.cause === undefined ? message : message.replace(/\.$/, ''), details.cause === undefined ? undefined : { cause: details.cause })
    const type = new.target
    this.name = type.name
    const row = FAILURES[type.code]
    this.code = type.code
    this.statusCode = row.status
    this.upstreamStatus = details.upstreamStatus
    this.outcome = details.outcome ?? row.outcome
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
  code: OsharaErrorCode
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
}

/** The browser sent a field it may not set (or a value outside an allow-list). */
export class OsharaFieldNotAllowedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_FIELD_NOT_ALLOWED'
  readonly field: string

  constructor (field: string, message: string) {
    super(message)
    this.field = field
  }
}

/** A cross-site browser request to the plugin's routes (Fetch Metadata, then `Origin`); see `allowedOrigins`. */
export class OsharaOriginNotAllowedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_ORIGIN_NOT_ALLOWED'
}

/** Our own concurrent-session limit is reached. */
export class OsharaSessionLimitError extends OsharaError {
  static override readonly code = 'FST_OSHARA_SESSION_LIMIT'
  /** Which limit the built-in limiter hit; undefined for one thrown by the app. */
  scope: 'key' | 'global' | undefined
}

/** A key's usage quota (sessions, minutes or cost in the window) is used up. */
export class OsharaQuotaExceededError extends OsharaError {
  static override readonly code = 'FST_OSHARA_QUOTA_EXCEEDED'
}

/** Oshara answered 429: the plan's concurrent-session limit is reached. */
export class OsharaUpstreamLimitError extends OsharaError {
  static override readonly code = 'FST_OSHARA_UPSTREAM_LIMIT'
}

/** Oshara answered 403: the configured `origin` is not on the character's `allowed_origins`. */
export class OsharaOriginForbiddenError extends OsharaError {
  static override readonly code = 'FST_OSHARA_ORIGIN_FORBIDDEN'
}

/** Oshara answered 404 to a session request: unknown or inactive character slug. */
export class OsharaAgentNotFoundError extends OsharaError {
  static override readonly code = 'FST_OSHARA_AGENT_NOT_FOUND'
}

/** Oshara answered 401: the API key is missing, wrong or revoked. */
export class OsharaUnauthorizedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_UNAUTHORIZED'
}

/** Oshara answered another 4xx. */
export class OsharaRequestRejectedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_REQUEST_REJECTED'
}

/** Oshara answered 5xx (after retries). */
export class OsharaUpstreamError extends OsharaError {
  static override readonly code = 'FST_OSHARA_UPSTREAM_ERROR'
}

/** Oshara unreachable (after retries), circuit open, or the limiter store down. */
export class OsharaUnavailableError extends OsharaError {
  static override readonly code = 'FST_OSHARA_UNAVAILABLE'
}

/** A per-attempt timeout, or the whole-call deadline, passed. */
export class OsharaTimeoutError extends OsharaError {
  static override readonly code = 'FST_OSHARA_TIMEOUT'
}

/** Oshara answered 2xx with a body that is not a valid session (or is too large). */
export class OsharaBadResponseError extends OsharaError {
  static override readonly code = 'FST_OSHARA_BAD_RESPONSE'
}

/** The caller's `AbortSignal` fired (for the route: the browser went away). 499: client closed request. */
export class OsharaAbortedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_ABORTED'
}

/** No such session: `DELETE {path}/{id}` for a session the key does not hold, or `getSession` 404. */
export class OsharaSessionNotFoundError extends OsharaError {
  static override readonly code = 'FST_OSHARA_SESSION_NOT_FOUND'
}

/** The session request the server built (options, `session`, `beforeSession`, decorator input) is invalid. */
export class OsharaInvalidSessionError extends OsharaError {
  static override readonly code = 'FST_OSHARA_INVALID_SESSION'
}

/**
 * One of the app's own callbacks (`agent`, `metadata`, `session`, `beforeSession`, `onSession`,
 * `response`, `limits.key`) threw an error without a 4xx `statusCode`. The browser gets a safe
 * message; the original is the `cause`, logged with its stack.
 */
export class OsharaCallbackError extends OsharaError {
  static override readonly code = 'FST_OSHARA_CALLBACK_FAILED'
  /** Which option threw, e.g. `'metadata'`. */
  readonly callback: string

  constructor (callback: string, cause: unknown) {
    super('The voice session could not be prepared.', { cause })
    this.callback = callback
  }
}

/** `Idempotency-Key` (or `createSession`'s `idempotencyKey`) is not 1 to 255 visible ASCII characters. */
export class OsharaInvalidIdempotencyKeyError extends OsharaError {
  static override readonly code = 'FST_OSHARA_INVALID_IDEMPOTENCY_KEY'
}

/** A request with the same `Idempotency-Key` (and the same body) is still being served; `Retry-After: 1`. */
export class OsharaIdempotencyInProgressError extends OsharaError {
  static override readonly code = 'FST_OSHARA_IDEMPOTENCY_IN_PROGRESS'
}

/** The `Idempotency-Key` was used within `idempotency.ttlMs` for a request with another body. */
export class OsharaIdempotencyKeyReusedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_IDEMPOTENCY_KEY_REUSED'
}

/** A tool call without the right secret header (`tools.secretHeader`). */
export class OsharaToolUnauthorizedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_TOOL_UNAUTHORIZED'
}

/** A tool call whose `_session.metadata` carries no valid, unexpired signature: a session this app did not mint, or edited metadata. */
export class OsharaToolForbiddenError extends OsharaError {
  static override readonly code = 'FST_OSHARA_TOOL_FORBIDDEN'
}

/** A tool call for a session the plugin knows has ended (README "Agent tools"). */
export class OsharaSessionEndedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_SESSION_ENDED'
}

/** A tool call whose arguments do not match the tool's `args` schema; the message names the argument and what was expected. */
export class OsharaToolArgumentsError extends OsharaError {
  static override readonly code = 'FST_OSHARA_TOOL_INVALID_ARGUMENTS'
}

/** Throw it from a tool handler to say no in words the agent can repeat, e.g. "No order with that number." (422). */
export class OsharaToolRefusedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_TOOL_REFUSED'
}

/** A tool handler did not answer within `tools.timeoutMs`; its `signal` was aborted. */
export class OsharaToolTimeoutError extends OsharaError {
  static override readonly code = 'FST_OSHARA_TOOL_TIMEOUT'
}

/** A tool handler threw an error without a 4xx `statusCode`: the agent gets a safe message, the original is logged. */
export class OsharaToolFailedError extends OsharaError {
  static override readonly code = 'FST_OSHARA_TOOL_FAILED'
}

/** Builds the register-time error: which option, what is wrong, how to fix it. */
export function invalidOption (option: string, problem: string, fix: string): OsharaInvalidOptionsError {
  return new OsharaInvalidOptionsError(`fastify-oshara-voice: option "${option}" ${problem}. Fix: ${fix}`, { fix })
}
