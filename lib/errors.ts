import {
  type AnswerCase,
  FAILURES,
  type FailureCase,
  type FailureRow,
  type OsharaErrorCode,
  type OsharaOutcome,
  RETRY_AFTER,
  type RetryAfterFacts,
  type SituationOf
} from './failures.js'

/**
 * Every failure the plugin or the client reports is an `OsharaError` subclass with one
 * `FST_OSHARA_*` code; its status, default outcome, retry and breaker rules, and per situation
 * its message and `Retry-After`, are the code's row in `failures.ts`; `failure()` (at the end)
 * builds the error of a row. Messages are safe to show a browser; the upstream detail and the
 * fix live in `detail` and `fix` for the logs. Fields are read-only once built: `copyWith()`
 * makes a changed copy.
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

/** Defines `fields` on `error` as enumerable (loggers print them) and read-only: assigning one throws in strict mode. */
function defineReadOnly (error: Error, fields: Record<string, unknown>): void {
  const descriptors: PropertyDescriptorMap = {}
  for (const key in fields) descriptors[key] = { value: fields[key], enumerable: true, writable: false, configurable: false }
  Object.defineProperties(error, descriptors)
}

export class OsharaError extends Error {
  static readonly code: OsharaErrorCode = 'FST_OSHARA_ERROR'

  /** The status the route replies with (the code's row in the failure table). */
  static get statusCode (): number {
    return FAILURES[this.code].status
  }

  // Declared, not initialized: the constructor defines them read-only.
  declare readonly code: OsharaErrorCode
  declare readonly statusCode: number
  declare readonly upstreamStatus: number | undefined
  declare readonly outcome: OsharaOutcome
  declare readonly retryAfterMs: number | undefined
  declare readonly attempts: number
  declare readonly requestId: string | undefined
  declare readonly detail: string | undefined
  declare readonly fix: string | undefined

  constructor (message: string, details: OsharaErrorDetails = {}) {
    // Loggers print a cause's message after ours, joined by ': ' (pino's err serializer): no '.:' glue.
    super(details.cause === undefined ? message : message.replace(/\.$/, ''), details.cause === undefined ? undefined : { cause: details.cause })
    const type = new.target
    this.name = type.name
    const row = FAILURES[type.code]
    defineReadOnly(this, {
      code: type.code,
      statusCode: row.status,
      upstreamStatus: details.upstreamStatus,
      outcome: details.outcome ?? row.outcome,
      retryAfterMs: details.retryAfterMs,
      attempts: details.attempts ?? 0,
      requestId: details.requestId,
      detail: details.detail,
      fix: details.fix
    })
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
  declare readonly field: string

  constructor (field: string, message: string) {
    super(message)
    defineReadOnly(this, { field })
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
  declare readonly scope: 'key' | 'global' | undefined

  constructor (message: string, details: OsharaErrorDetails & { scope?: 'key' | 'global' | undefined } = {}) {
    super(message, details)
    defineReadOnly(this, { scope: details.scope })
  }
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
  declare readonly callback: string

  constructor (callback: string, cause: unknown) {
    super(FAILURES.FST_OSHARA_CALLBACK_FAILED.cases.threw.message, { cause })
    defineReadOnly(this, { callback })
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

/** The class of each code: `failure()` builds it, and a test checks that each class carries its code. */
export const CLASS_OF = {
  FST_OSHARA_ERROR: OsharaError,
  FST_OSHARA_INVALID_OPTIONS: OsharaInvalidOptionsError,
  FST_OSHARA_FIELD_NOT_ALLOWED: OsharaFieldNotAllowedError,
  FST_OSHARA_ORIGIN_NOT_ALLOWED: OsharaOriginNotAllowedError,
  FST_OSHARA_SESSION_LIMIT: OsharaSessionLimitError,
  FST_OSHARA_QUOTA_EXCEEDED: OsharaQuotaExceededError,
  FST_OSHARA_UPSTREAM_LIMIT: OsharaUpstreamLimitError,
  FST_OSHARA_ORIGIN_FORBIDDEN: OsharaOriginForbiddenError,
  FST_OSHARA_AGENT_NOT_FOUND: OsharaAgentNotFoundError,
  FST_OSHARA_UNAUTHORIZED: OsharaUnauthorizedError,
  FST_OSHARA_REQUEST_REJECTED: OsharaRequestRejectedError,
  FST_OSHARA_UPSTREAM_ERROR: OsharaUpstreamError,
  FST_OSHARA_UNAVAILABLE: OsharaUnavailableError,
  FST_OSHARA_TIMEOUT: OsharaTimeoutError,
  FST_OSHARA_BAD_RESPONSE: OsharaBadResponseError,
  FST_OSHARA_ABORTED: OsharaAbortedError,
  FST_OSHARA_SESSION_NOT_FOUND: OsharaSessionNotFoundError,
  FST_OSHARA_INVALID_SESSION: OsharaInvalidSessionError,
  FST_OSHARA_CALLBACK_FAILED: OsharaCallbackError,
  FST_OSHARA_INVALID_IDEMPOTENCY_KEY: OsharaInvalidIdempotencyKeyError,
  FST_OSHARA_IDEMPOTENCY_IN_PROGRESS: OsharaIdempotencyInProgressError,
  FST_OSHARA_IDEMPOTENCY_KEY_REUSED: OsharaIdempotencyKeyReusedError,
  FST_OSHARA_TOOL_UNAUTHORIZED: OsharaToolUnauthorizedError,
  FST_OSHARA_TOOL_FORBIDDEN: OsharaToolForbiddenError,
  FST_OSHARA_SESSION_ENDED: OsharaSessionEndedError,
  FST_OSHARA_TOOL_INVALID_ARGUMENTS: OsharaToolArgumentsError,
  FST_OSHARA_TOOL_REFUSED: OsharaToolRefusedError,
  FST_OSHARA_TOOL_TIMEOUT: OsharaToolTimeoutError,
  FST_OSHARA_TOOL_FAILED: OsharaToolFailedError
} as const satisfies Record<OsharaErrorCode, { readonly code: OsharaErrorCode, readonly prototype: OsharaError }>

/** The `{name}` placeholders of a message or fix. */
type WordsIn<T> = T extends `${string}{${infer Word}}${infer Rest}` ? Word | WordsIn<Rest> : never
type CaseOf<C extends OsharaErrorCode, S extends SituationOf<C>> = (typeof FAILURES)[C]['cases'][S]
/** The words a situation's message (and its own fix) needs. */
type WordsOf<C extends OsharaErrorCode, S extends SituationOf<C>> = WordsIn<
  | (CaseOf<C, S> extends { message: infer M } ? M : never)
  | (CaseOf<C, S> extends { fix: infer F } ? F : never)
>
type Words = Readonly<Record<string, string | number>>

/** What the maker of a failure knows; the row decides the rest (message, outcome, `retryAfterMs`, fix). */
export type FailureFacts<C extends OsharaErrorCode, S extends SituationOf<C>> =
  Omit<OsharaErrorDetails, 'outcome' | 'retryAfterMs' | 'fix'> & RetryAfterFacts &
  // Words beyond the message's fill the row's fix (`{origin}`).
  ([WordsOf<C, S>] extends [never] ? { words?: Words | undefined } : { words: Readonly<Record<WordsOf<C, S>, string | number>> }) &
  (C extends 'FST_OSHARA_SESSION_LIMIT' ? { scope: 'key' | 'global' } : unknown)

/** Codes whose class takes `(message, details)`; the other two take their own first argument (see `messageOf`). */
type BuiltCode = Exclude<OsharaErrorCode, 'FST_OSHARA_FIELD_NOT_ALLOWED' | 'FST_OSHARA_CALLBACK_FAILED'>
type Constructor = new (message: string, details: OsharaErrorDetails) => OsharaError

function fill (template: string, words: Words | undefined): string {
  if (words === undefined) return template
  // A placeholder with no word stays as written (the fix's "/api/ai-characters/{slug}/").
  return template.replace(/\{(\w+)\}/g, (placeholder, word: string) => Object.hasOwn(words, word) ? String(words[word]) : placeholder)
}

function caseOf (code: OsharaErrorCode, situation: string): FailureCase {
  return (FAILURES[code] as FailureRow).cases[situation] as FailureCase
}

/** The message of `code` in `situation`, with its words filled in. */
export function messageOf<C extends OsharaErrorCode, S extends SituationOf<C>> (
  code: C, situation: S, ...[words]: [WordsOf<C, S>] extends [never] ? [] : [words: Readonly<Record<WordsOf<C, S>, string | number>>]
): string {
  return fill(caseOf(code, situation).message, words)
}

/**
 * The error of `code` in `situation` (a key of the row's `cases`): its class, message, outcome,
 * `retryAfterMs` (the case's rule applied to `facts`) and fix come from the row.
 */
export function failure<C extends BuiltCode, S extends SituationOf<C>> (
  code: C, situation: S, ...[facts]: {} extends FailureFacts<C, S> ? [facts?: FailureFacts<C, S>] : [facts: FailureFacts<C, S>]
): InstanceType<(typeof CLASS_OF)[C]> {
  return build(code, situation, (facts ?? {}) as AnyFacts) as InstanceType<(typeof CLASS_OF)[C]>
}

type AnyFacts = Omit<OsharaErrorDetails, 'outcome' | 'retryAfterMs' | 'fix'> & RetryAfterFacts & { words?: Words | undefined, scope?: 'key' | 'global' }

/** The error of an upstream answer's code and situation (`caseOfAnswer` in the failure table). */
export function failureOfAnswer ({ code, situation }: AnswerCase, facts: AnyFacts): OsharaError {
  return build(code as BuiltCode, situation, facts)
}

function build (code: BuiltCode, situation: string, facts: AnyFacts): OsharaError {
  const row: FailureRow = FAILURES[code]
  const { message, retryAfterMs, outcome, fix = row.fix } = caseOf(code, situation)
  const { upstreamStatus, attempts, requestId, detail, cause, scope, words } = facts
  const details: OsharaErrorDetails & { scope?: 'key' | 'global' } = {
    upstreamStatus,
    attempts,
    requestId,
    detail,
    cause,
    scope,
    outcome,
    retryAfterMs: RETRY_AFTER[retryAfterMs](facts),
    fix: fix === undefined ? undefined : fill(fix, words)
  }
  return new (CLASS_OF[code] as Constructor)(fill(message, words), details)
}

/**
 * A copy of `error` (same class, message, stack and cause) with `changes`: an error is never
 * changed once built. A native error (not `Object.create`), so that loggers and
 * `util.types.isNativeError` treat it as one.
 */
export function copyWith<E extends OsharaError> (error: E, changes: Pick<OsharaErrorDetails, 'attempts' | 'requestId' | 'outcome'>): E {
  const copy = Reflect.construct(Error, [], error.constructor) as E
  const fields: PropertyDescriptorMap = Object.getOwnPropertyDescriptors(error)
  for (const [key, value] of Object.entries(changes)) fields[key] = { value, enumerable: true, writable: false, configurable: false }
  // Newer V8 makes `stack` an accessor that reads its receiver: copy the text, not the accessor.
  fields.stack = { value: error.stack, enumerable: false, writable: true, configurable: true }
  return Object.defineProperties(copy, fields)
}

/** Builds the register-time error: which option, what is wrong, how to fix it. */
export function invalidOption (option: string, problem: string, fix: string): OsharaInvalidOptionsError {
  return failure('FST_OSHARA_INVALID_OPTIONS', 'option', { words: { option, problem, fix } })
}
