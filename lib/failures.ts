/**
 * Every failure the plugin or the client reports, one row per error code: the HTTP status the
 * route replies with, what is known of the upstream session, whether and when a retry is
 * allowed, how the circuit breaker counts it, whether the reply carries `Retry-After`, and
 * what an operator must fix. Classification (`client/classify.ts`), retry (`client/retry.ts`),
 * the breaker (`client/client.ts`) and the reply (`route/routes.ts`) all read this table: to
 * change a rule, change its row.
 */

/** What is known of the upstream session when a call failed. */
export type OsharaOutcome = 'not_created' | 'unknown'

/**
 * When a failed attempt may be tried again (the attempt count and the deadline aside):
 * - `never`;
 * - `if-not-created`: when the request certainly did not reach Oshara, for a GET, or with `retry.onTimeout`;
 * - `if-timeout-allowed`: for a GET, or with `retry.onTimeout`;
 * - `if-status-listed`: when the upstream status is in `retry.statusCodes`, or for a GET;
 * - `once-with-retry-after`: with `retry.on429`, once, when the answer named a delay.
 */
export type RetryRule = 'never' | 'if-not-created' | 'if-timeout-allowed' | 'if-status-listed' | 'once-with-retry-after'

/** `failure`: the upstream is failing; `success`: it answered (even with a refusal); `neutral`: nothing learned; `none`: no upstream call. */
export type BreakerCount = 'failure' | 'success' | 'neutral' | 'none'

export interface FailureRow {
  /** The status the route replies with. */
  readonly status: number
  /** The outcome unless the error says otherwise (a 503 or a connection refused is `not_created`). */
  readonly outcome: OsharaOutcome
  readonly retry: RetryRule
  readonly breaker: BreakerCount
  /** The reply carries `Retry-After` (from the error's `retryAfterMs`). */
  readonly retryAfter: boolean
  /** What the operator must change; such failures are logged at error level with it. `{origin}` is the configured origin. */
  readonly fix?: string
}

export const FAILURES = {
  /** An `OsharaError` made by the app itself (`new OsharaError(...)`). */
  FST_OSHARA_ERROR: { status: 500, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_INVALID_OPTIONS: { status: 500, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_FIELD_NOT_ALLOWED: { status: 400, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_ORIGIN_NOT_ALLOWED: { status: 403, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_SESSION_LIMIT: { status: 429, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: true },
  FST_OSHARA_QUOTA_EXCEEDED: { status: 429, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: true },
  FST_OSHARA_UPSTREAM_LIMIT: { status: 429, outcome: 'not_created', retry: 'once-with-retry-after', breaker: 'success', retryAfter: true },
  FST_OSHARA_ORIGIN_FORBIDDEN: {
    status: 502,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'success',
    retryAfter: false,
    fix: "Add {origin} to the character's allowed_origins (Oshara dashboard, or PATCH /api/ai-characters/{slug}/), or set the origin option to an allowed origin."
  },
  FST_OSHARA_AGENT_NOT_FOUND: {
    status: 502,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'success',
    retryAfter: false,
    fix: 'Check the agent slug (the agent option, or agents) against the Oshara dashboard, and that the character is active.'
  },
  FST_OSHARA_UNAUTHORIZED: {
    status: 502,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'success',
    retryAfter: false,
    fix: 'Set the apiKey option to a valid Oshara API key (sk_...), or remove it.'
  },
  FST_OSHARA_REQUEST_REJECTED: { status: 502, outcome: 'not_created', retry: 'never', breaker: 'success', retryAfter: false },
  FST_OSHARA_UPSTREAM_ERROR: { status: 502, outcome: 'unknown', retry: 'if-status-listed', breaker: 'failure', retryAfter: false },
  FST_OSHARA_UNAVAILABLE: { status: 503, outcome: 'not_created', retry: 'if-not-created', breaker: 'failure', retryAfter: true },
  FST_OSHARA_TIMEOUT: { status: 504, outcome: 'unknown', retry: 'if-timeout-allowed', breaker: 'failure', retryAfter: false },
  FST_OSHARA_BAD_RESPONSE: { status: 502, outcome: 'unknown', retry: 'never', breaker: 'success', retryAfter: false },
  FST_OSHARA_ABORTED: { status: 499, outcome: 'unknown', retry: 'never', breaker: 'neutral', retryAfter: false },
  FST_OSHARA_SESSION_NOT_FOUND: { status: 404, outcome: 'not_created', retry: 'never', breaker: 'success', retryAfter: false },
  FST_OSHARA_INVALID_SESSION: { status: 500, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_CALLBACK_FAILED: { status: 500, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_INVALID_IDEMPOTENCY_KEY: { status: 400, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_IDEMPOTENCY_IN_PROGRESS: { status: 409, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: true },
  FST_OSHARA_IDEMPOTENCY_KEY_REUSED: { status: 422, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  // Replies of the tool routes (README "Agent tools"): no upstream call is involved.
  FST_OSHARA_TOOL_UNAUTHORIZED: { status: 401, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_TOOL_FORBIDDEN: { status: 403, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_SESSION_ENDED: { status: 410, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_TOOL_INVALID_ARGUMENTS: { status: 400, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_TOOL_REFUSED: { status: 422, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_TOOL_TIMEOUT: { status: 504, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false },
  FST_OSHARA_TOOL_FAILED: { status: 500, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false }
} as const satisfies Record<string, FailureRow>

/** Every `FST_OSHARA_*` code. */
export type OsharaErrorCode = keyof typeof FAILURES

/** The code of a non-2xx upstream status. A 404 means the agent for a session request, the session for a lookup. */
export function codeOfStatus (status: number, endpoint: 'session' | 'billing'): OsharaErrorCode {
  if (status === 429) return 'FST_OSHARA_UPSTREAM_LIMIT'
  if (status === 401) return 'FST_OSHARA_UNAUTHORIZED'
  if (status === 403) return 'FST_OSHARA_ORIGIN_FORBIDDEN'
  if (status === 404) return endpoint === 'billing' ? 'FST_OSHARA_SESSION_NOT_FOUND' : 'FST_OSHARA_AGENT_NOT_FOUND'
  if (status >= 400 && status < 500) return 'FST_OSHARA_REQUEST_REJECTED'
  if (status >= 500) return 'FST_OSHARA_UPSTREAM_ERROR'
  return 'FST_OSHARA_BAD_RESPONSE'
}
