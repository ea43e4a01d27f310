/**
 * Every failure the plugin or the client reports, one row per error code: the HTTP status the
 * route replies with, what is known of the upstream session, whether and when a retry is
 * allowed, how the circuit breaker counts it, whether the reply carries `Retry-After`, what an
 * operator must fix, and per situation (`cases`) the message and how the error's
 * `retryAfterMs` is decided. `errors.ts` builds every error from its row (`failure()`), and
 * retry (`client/retry.ts`), the breaker (`client/transport.ts`) and the reply
 * (`route/routes.ts`) read it: to change a rule or a message, change its row.
 */

/** What is known of the upstream session when a call failed. */
export type OsharaOutcome = 'not_created' | 'unknown'

/**
 * When a failed attempt may be tried again (the attempt count and the deadline aside):
 * - `never`;
 * - `if-not-created`: when the request certainly did not reach Oshara, for a GET, or with `retry.onTimeout`;
 * - `if-status-listed`: when the upstream status is in `retry.statusCodes`, or for a GET;
 * - `once-with-retry-after`: with `retry.on429`, once, when the answer named a delay.
 */
export type RetryRule = 'never' | 'if-not-created' | 'if-status-listed' | 'once-with-retry-after'

/** `failure`: the upstream is failing; `success`: it answered (even with a refusal); `neutral`: nothing learned; `none`: no upstream call. */
export type BreakerCount = 'failure' | 'success' | 'neutral' | 'none'

/** `Retry-After` when neither Oshara nor the network names a delay, and while a store is failing. */
export const DEFAULT_RETRY_AFTER_MS = 5000

/** A refusal that frees by itself (a slot, a quota window) is not retried sooner than this. */
const MIN_WAIT_MS = 1000

/** What the maker of an error knows of when to try again; each rule reads what it needs. */
export interface RetryAfterFacts {
  /** The delay the upstream answer asked for (`retry-after-ms` or `Retry-After`), if any. */
  serverDelayMs?: number | undefined
  /** How long until what refused frees: the breaker's cooldown, the oldest slot, the quota window. */
  waitMs?: number | undefined
  /** With tracking, a key at its limit is looked at again within this (`tracking.maxCheckIntervalMs`). */
  lookAgainWithinMs?: number | undefined
}

/**
 * How an error's `retryAfterMs` is decided (the route sends it as `Retry-After` unless the row's
 * `retryAfter` is false):
 * - `none`: no delay;
 * - `from-answer`: the delay the upstream answer asked for, if any;
 * - `from-answer-else-default`: that, else `DEFAULT_RETRY_AFTER_MS`;
 * - `default`: `DEFAULT_RETRY_AFTER_MS`;
 * - `one-second`: a request still in flight;
 * - `breaker-cooldown`: the cooldown left (`waitMs`);
 * - `until-slot-frees`: until the limiting scope frees a slot (`waitMs`, at least 1 s), at most `lookAgainWithinMs`;
 * - `until-window-reset`: until the quota window resets (`waitMs`, at least 1 s).
 */
export const RETRY_AFTER = {
  none: () => undefined,
  'from-answer': (facts) => facts.serverDelayMs,
  'from-answer-else-default': (facts) => facts.serverDelayMs ?? DEFAULT_RETRY_AFTER_MS,
  default: () => DEFAULT_RETRY_AFTER_MS,
  'one-second': () => 1000,
  'breaker-cooldown': (facts) => facts.waitMs,
  'until-slot-frees': (facts) => Math.min(Math.max(MIN_WAIT_MS, facts.waitMs as number), facts.lookAgainWithinMs ?? Infinity),
  'until-window-reset': (facts) => Math.max(MIN_WAIT_MS, facts.waitMs as number)
} as const satisfies Record<string, (facts: RetryAfterFacts) => number | undefined>

export type RetryAfterRule = keyof typeof RETRY_AFTER

/** One situation a code is reported in. `{name}` in `message` and `fix` is filled from the error's words. */
export interface FailureCase {
  /** Safe to show a browser (or, for the tool routes, the agent). */
  readonly message: string
  readonly retryAfterMs: RetryAfterRule
  /** When this situation knows more than the row's outcome. */
  readonly outcome?: OsharaOutcome
  /** What the operator should check, when this situation says more than the row's `fix`; logged, never sent. */
  readonly fix?: string
}

export interface FailureRow {
  /** The status the route replies with. */
  readonly status: number
  /** The outcome unless the situation says otherwise (a 503 or a connection refused is `not_created`). */
  readonly outcome: OsharaOutcome
  readonly retry: RetryRule
  readonly breaker: BreakerCount
  /**
   * The reply carries `Retry-After` (from the error's `retryAfterMs`): always, or only when the
   * upstream answer named a delay (`when-named`: a 503 asking for longer than `retry.maxRetryAfterMs`).
   */
  readonly retryAfter: boolean | 'when-named'
  /** What the operator must change; such failures are logged at error level with it. `{origin}` is the configured origin. */
  readonly fix?: string
  /** The situations the plugin reports this code in; empty for a code only the app throws. */
  readonly cases: Readonly<Record<string, FailureCase>>
}

const STORE_DOWN = { message: 'Voice sessions are temporarily unavailable; try again shortly', retryAfterMs: 'default' } as const
const UNREACHABLE_FIX = 'Check that baseUrl ({baseUrl}) is the Oshara API root and that this server can reach it (DNS, firewall, proxy).'
const ABORTED = 'The session request was aborted.'
const TIMED_OUT = 'The voice service did not answer in time. Try again.'
const PREPARE_FAILED = 'The voice session could not be prepared.'

export const FAILURES = {
  /** An `OsharaError` made by the app itself (`new OsharaError(...)`). */
  FST_OSHARA_ERROR: { status: 500, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false, cases: {} },
  FST_OSHARA_INVALID_OPTIONS: {
    status: 500,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { option: { message: 'fastify-oshara-voice: option "{option}" {problem}. Fix: {fix}', fix: '{fix}', retryAfterMs: 'none' } }
  },
  FST_OSHARA_FIELD_NOT_ALLOWED: {
    status: 400,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: {
      field: { message: 'The field "{field}" is not allowed.', retryAfterMs: 'none' },
      language: { message: 'The language "{language}" is not offered (field "language").', retryAfterMs: 'none' },
      agent: { message: 'The agent "{agent}" is not offered (field "{field}").', retryAfterMs: 'none' },
      'agents-disagree': { message: 'The fields "agent" and "room_config.agents[0].agent_name" disagree.', retryAfterMs: 'none' }
    }
  },
  FST_OSHARA_ORIGIN_NOT_ALLOWED: {
    status: 403,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { 'cross-site': { message: 'Cross-site requests are not allowed.', retryAfterMs: 'none' } }
  },
  FST_OSHARA_SESSION_LIMIT: {
    status: 429,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: true,
    cases: { reached: { message: 'Too many active voice sessions. Try again later.', retryAfterMs: 'until-slot-frees' } }
  },
  FST_OSHARA_QUOTA_EXCEEDED: {
    status: 429,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: true,
    cases: { 'used-up': { message: 'You have used up your {budget} {when}. Try again later.', retryAfterMs: 'until-window-reset' } }
  },
  FST_OSHARA_UPSTREAM_LIMIT: {
    status: 429,
    outcome: 'not_created',
    retry: 'once-with-retry-after',
    breaker: 'success',
    retryAfter: true,
    cases: { answered: { message: 'Too many active voice sessions. Try again later.', retryAfterMs: 'from-answer-else-default' } }
  },
  FST_OSHARA_ORIGIN_FORBIDDEN: {
    status: 502,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'success',
    retryAfter: false,
    fix: "Add {origin} to the character's allowed_origins (Oshara dashboard, or PATCH /api/ai-characters/{slug}/), or set the origin option to an allowed origin.",
    cases: { answered: { message: 'The voice service refused this site.', retryAfterMs: 'none' } }
  },
  FST_OSHARA_AGENT_NOT_FOUND: {
    status: 502,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'success',
    retryAfter: false,
    fix: 'Check the agent slug (the agent option, or agents) against the Oshara dashboard, and that the character is active.',
    cases: {
      /** Oshara's own answer: JSON whose `detail` names the agent (or character). */
      answered: { message: 'This voice agent is not available.', retryAfterMs: 'none' },
      /** A 404 that does not say so (an HTML page, `{"detail": "Not found."}`): what any server says of a path it lacks. */
      'path-unknown': {
        message: 'This voice agent is not available.',
        retryAfterMs: 'none',
        fix: 'Check the agent slug (the agent option, or agents), or baseUrl ({baseUrl}): the 404 does not say the agent is unknown, as a wrong API root would answer.'
      }
    }
  },
  FST_OSHARA_UNAUTHORIZED: {
    status: 502,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'success',
    retryAfter: false,
    fix: 'Set the apiKey option to a valid Oshara API key (sk_...), or remove it.',
    cases: { answered: { message: 'The voice service refused our credentials.', retryAfterMs: 'none' } }
  },
  FST_OSHARA_REQUEST_REJECTED: {
    status: 502,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'success',
    retryAfter: false,
    cases: { answered: { message: 'The voice service rejected the session request.', retryAfterMs: 'none' } }
  },
  FST_OSHARA_UPSTREAM_ERROR: {
    status: 502,
    outcome: 'unknown',
    retry: 'if-status-listed',
    breaker: 'failure',
    retryAfter: 'when-named',
    cases: {
      answered: { message: 'The voice service failed. Try again shortly.', retryAfterMs: 'from-answer' },
      /** A 503 is the server refusing the work: certainly not created. */
      'refused-work': { message: 'The voice service failed. Try again shortly.', retryAfterMs: 'from-answer', outcome: 'not_created' }
    }
  },
  FST_OSHARA_UNAVAILABLE: {
    status: 503,
    outcome: 'not_created',
    retry: 'if-not-created',
    breaker: 'failure',
    retryAfter: true,
    cases: {
      /** The request was certainly not sent (DNS, refused, unreachable, connect timeout, TLS). */
      unreachable: { message: 'The voice service is unreachable; try again shortly', retryAfterMs: 'default', outcome: 'not_created', fix: UNREACHABLE_FIX },
      /** A reset or a close after the request may have been sent. */
      'connection-failed': { message: 'The connection to the voice service failed; try again shortly', retryAfterMs: 'default', outcome: 'unknown', fix: UNREACHABLE_FIX },
      'circuit-open': { message: 'The voice service is temporarily unavailable. Try again shortly.', retryAfterMs: 'breaker-cooldown' },
      'client-closed': { message: 'The voice session client is closed.', retryAfterMs: 'none' },
      /** The limiter, quota or idempotency store failed, with `onStoreError: 'deny'`. */
      'store-down': STORE_DOWN,
      /** The quota store failed to answer `usage(key)`. */
      'usage-store-down': { message: 'Voice usage is temporarily unavailable; try again shortly', retryAfterMs: 'default' },
      /** The session store failed during a tool call's check, with `onStoreError: 'deny'`. */
      'tool-store-down': { message: 'The service is temporarily unavailable; try again shortly', retryAfterMs: 'default' }
    }
  },
  FST_OSHARA_TIMEOUT: {
    status: 504,
    outcome: 'unknown',
    retry: 'if-not-created',
    breaker: 'failure',
    retryAfter: false,
    cases: {
      /** The request may have been sent: undici had started writing it. */
      attempt: { message: TIMED_OUT, retryAfterMs: 'none' },
      /** The request was never written: the connection was still being made, or busy with another request. */
      'not-sent': { message: TIMED_OUT, retryAfterMs: 'none', outcome: 'not_created' }
    }
  },
  FST_OSHARA_BAD_RESPONSE: {
    status: 502,
    outcome: 'unknown',
    retry: 'never',
    breaker: 'success',
    retryAfter: false,
    cases: { answered: { message: 'The voice service sent an unexpected answer.', retryAfterMs: 'none' } }
  },
  FST_OSHARA_ABORTED: {
    status: 499,
    outcome: 'unknown',
    retry: 'never',
    breaker: 'neutral',
    retryAfter: false,
    cases: {
      /** Before any slot was taken or upstream call started. */
      'before-mint': { message: ABORTED, retryAfterMs: 'none', outcome: 'not_created' },
      /**
       * No request was being sent: before the first attempt, while one waited for a connection, or
       * during a retry delay. The call's error still says `unknown` when an earlier attempt may have created a session.
       */
      'not-sent': { message: ABORTED, retryAfterMs: 'none', outcome: 'not_created' },
      /** While an attempt's request may have been sent. */
      'during-call': { message: ABORTED, retryAfterMs: 'none' }
    }
  },
  FST_OSHARA_SESSION_NOT_FOUND: {
    status: 404,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'success',
    retryAfter: false,
    cases: {
      /** `DELETE {path}/{id}` for a session the key does not hold. */
      'not-held': { message: 'No such active voice session.', retryAfterMs: 'none' },
      answered: { message: 'No such voice session.', retryAfterMs: 'none' }
    }
  },
  FST_OSHARA_INVALID_SESSION: {
    status: 500,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: {
      'invalid-request': { message: 'invalid session request: {problem}', retryAfterMs: 'none' },
      'no-agent': { message: 'createSession needs input.agent: the plugin agent option is a function', retryAfterMs: 'none' },
      'no-session-id': { message: 'getSession needs a non-empty session id', retryAfterMs: 'none' },
      'page-size': { message: 'listSessions page_size must be an integer from 1 to {max}', retryAfterMs: 'none' },
      /** The app's metadata already carries the signature key the plugin sets. */
      'reserved-metadata': {
        message: PREPARE_FAILED,
        retryAfterMs: 'none',
        fix: 'rename the {key} key of your metadata (metadata option, beforeSession or createSession input): the plugin owns it'
      },
      /** The body holds what JSON cannot carry: metadata with a BigInt, a cycle, or a `toJSON` that throws or gives nothing. */
      'not-json': {
        message: PREPARE_FAILED,
        retryAfterMs: 'none',
        fix: 'make metadata (metadata option, beforeSession or createSession input) plain JSON data: no BigInt (convert it with String()), no circular reference, no toJSON that throws or returns undefined'
      }
    }
  },
  FST_OSHARA_CALLBACK_FAILED: {
    status: 500,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { threw: { message: PREPARE_FAILED, retryAfterMs: 'none' } }
  },
  FST_OSHARA_INVALID_IDEMPOTENCY_KEY: {
    status: 400,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { malformed: { message: 'Idempotency-Key must be 1 to 255 visible ASCII characters.', retryAfterMs: 'none' } }
  },
  FST_OSHARA_IDEMPOTENCY_IN_PROGRESS: {
    status: 409,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: true,
    cases: { 'in-flight': { message: 'A request with this Idempotency-Key is still in progress. Try again shortly.', retryAfterMs: 'one-second' } }
  },
  FST_OSHARA_IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { 'other-request': { message: 'This Idempotency-Key was used for a different request.', retryAfterMs: 'none' } }
  },
  // Replies of the tool routes (README "Agent tools"): no upstream call is involved.
  FST_OSHARA_TOOL_UNAUTHORIZED: {
    status: 401,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { 'no-secret': { message: 'Unauthorized.', retryAfterMs: 'none' } }
  },
  FST_OSHARA_TOOL_FORBIDDEN: {
    status: 403,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { unsigned: { message: 'This call was not started by this app.', retryAfterMs: 'none' } }
  },
  FST_OSHARA_SESSION_ENDED: {
    status: 410,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { ended: { message: 'This call has ended.', retryAfterMs: 'none' } }
  },
  FST_OSHARA_TOOL_INVALID_ARGUMENTS: {
    status: 400,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { mismatch: { message: '{problem}', retryAfterMs: 'none' } }
  },
  /** Thrown by the app's tool handlers only. */
  FST_OSHARA_TOOL_REFUSED: { status: 422, outcome: 'not_created', retry: 'never', breaker: 'none', retryAfter: false, cases: {} },
  FST_OSHARA_TOOL_TIMEOUT: {
    status: 504,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: {
      /** The reply to the agent. */
      deadline: { message: 'That took too long. Please try again in a moment.', retryAfterMs: 'none' },
      /** The reason of the handler's aborted `signal`. */
      'signal-aborted': { message: 'The tool did not answer within {timeoutMs} ms.', retryAfterMs: 'none' }
    }
  },
  FST_OSHARA_TOOL_FAILED: {
    status: 500,
    outcome: 'not_created',
    retry: 'never',
    breaker: 'none',
    retryAfter: false,
    cases: { threw: { message: 'The tool failed. Please try again later.', retryAfterMs: 'none' } }
  }
} as const satisfies Record<string, FailureRow>

/** Every `FST_OSHARA_*` code. */
export type OsharaErrorCode = keyof typeof FAILURES

/** The situations of `code`. */
export type SituationOf<C extends OsharaErrorCode> = keyof (typeof FAILURES)[C]['cases'] & string

/** The code and situation of a non-2xx upstream status. */
export type AnswerCase = {
  [C in OsharaErrorCode]: { code: C, situation: SituationOf<C> }
}[OsharaErrorCode]

/**
 * The code and situation of a non-2xx upstream status. A 404 means the agent for a session
 * request (`namesTheAgent`: the answer says so), the session for a lookup.
 */
export function caseOfAnswer (status: number, endpoint: 'session' | 'billing', namesTheAgent: boolean): AnswerCase {
  if (status === 429) return { code: 'FST_OSHARA_UPSTREAM_LIMIT', situation: 'answered' }
  if (status === 401) return { code: 'FST_OSHARA_UNAUTHORIZED', situation: 'answered' }
  if (status === 403) return { code: 'FST_OSHARA_ORIGIN_FORBIDDEN', situation: 'answered' }
  if (status === 404) {
    if (endpoint === 'billing') return { code: 'FST_OSHARA_SESSION_NOT_FOUND', situation: 'answered' }
    return { code: 'FST_OSHARA_AGENT_NOT_FOUND', situation: namesTheAgent ? 'answered' : 'path-unknown' }
  }
  if (status >= 400 && status < 500) return { code: 'FST_OSHARA_REQUEST_REJECTED', situation: 'answered' }
  if (status >= 500) return { code: 'FST_OSHARA_UPSTREAM_ERROR', situation: status === 503 ? 'refused-work' : 'answered' }
  return { code: 'FST_OSHARA_BAD_RESPONSE', situation: 'answered' }
}
