import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ValueError } from '@sinclair/typebox/errors'
import { Pool, type Dispatcher } from 'undici'
import {
  OsharaAbortedError,
  type OsharaError,
  OsharaInvalidSessionError,
  OsharaUnavailableError
} from '../errors.js'
import { FAILURES } from '../failures.js'
import {
  type OsharaRetryMessage,
  type OsharaSessionCreateMessage,
  type OsharaSessionLookupMessage,
  type OsharaTracingChannel,
  retryChannel,
  sessionCreateChannel,
  sessionLookupChannel,
  traceOperation
} from '../observability/channels.js'
import { kTracing, type SessionTracing } from '../observability/tracing.js'
import { VERSION } from '../version.js'
import { CircuitBreaker, type OsharaBreakerState } from './breaker.js'
import { attemptTimeout, badResponse, classifyNetworkError, classifyStatus, type ClassifyContext } from './classify.js'
import { type ClientConfig, normalizeClientOptions, type OsharaClientOptions, type OsharaLogger } from './options.js'
import { callSecrets } from './redact.js'
import { backoffDelay, isRetryable, serverDelayMs } from './retry.js'
import {
  checkFormResponses,
  checkSummaryCore,
  checkSummaryEnvelope,
  checkUsageEnvelope,
  type ListFormResponsesFilters,
  type ListSessionsFilters,
  MAX_PAGE_SIZE,
  type OsharaFormResponse,
  type OsharaSessionList,
  type OsharaSessionSummary,
  type OsharaUsageTotals,
  queryOf,
  totalsOf
} from './summaries.js'
import { warnOfOddFields } from './summary-fields.js'
import { checkAppearance, type OsharaAppearance } from './appearance.js'
import {
  checkSessionRequest,
  checkSessionResponse,
  mcpHeadersProblem,
  type OsharaSession,
  type SessionRequest
} from './schemas.js'

export interface CallOptions {
  /** Aborting it ends the call, an in-flight attempt and a pending retry delay at once. */
  signal?: AbortSignal | undefined
  /** Logger for this call's retry warnings (e.g. `request.log`); defaults to the client's `logger`. */
  log?: OsharaLogger | undefined
  /** `X-Request-Id` for this call; a random UUID by default. */
  requestId?: string | undefined
}

/** A lookup for session tracking, with where to log odd fields: only `session_id` and `finalized_at` must pass their checks (see summary-fields.ts). */
export const kTolerant = Symbol('oshara tolerant lookup')

/** The plugin's own call options: with `telemetry.tracing`, what makes the `oshara.session.create` span. Not public API. */
export interface PluginCallOptions extends CallOptions {
  [kTracing]?: SessionTracing | undefined
  [kTolerant]?: OsharaLogger | undefined
}

/** What a traced call reports as it ends. */
interface CallTrace {
  requestId: string
  attempts?: number
}

export interface OsharaClient {
  /** The `Origin` this client sends. */
  readonly origin: string
  /** The Oshara API root it calls (`baseUrl`), for log lines that name it. */
  readonly baseUrl: string
  /** An `apiKey` is configured: the read API (and session tracking) can work. */
  readonly hasApiKey: boolean
  /** The circuit breaker's state now; always `'closed'` with `breaker: false`. */
  readonly breakerState: OsharaBreakerState
  /** Retries made since the client was created (session and read calls). */
  readonly retryCount: number
  /** Mint a session: `POST /api/agents/agent-session/` with only the fields that are set. */
  createSession (body: SessionRequest, options?: CallOptions): Promise<OsharaSession>
  /** One session's billing summary and transcript (`GET /api/billing/sessions/{id}/`, needs `apiKey`); resolves to its `data`. */
  getSession (sessionId: string, options?: CallOptions): Promise<OsharaSessionSummary>
  /**
   * Every session summary the filters select (`GET /api/billing/usage/`, needs `apiKey`), one page
   * in memory at a time: `for await (const summary of client.listSessions({ start }))`; `totals()`
   * gives the totals over all pages.
   */
  listSessions (filters?: ListSessionsFilters, options?: CallOptions): OsharaSessionList
  /** The form responses of a character (`GET /api/agents/{slug}/form-responses/`, needs `apiKey`): one request, a bare array. */
  listFormResponses (slug: string, filters?: ListFormResponsesFilters, options?: CallOptions): AsyncIterable<OsharaFormResponse>
  /**
   * A character's public appearance (`GET /api/agents/{slug}/appearance/`): no key needed, gated by
   * the character's `allowed_origins` like the session endpoint, no side effects.
   */
  getAppearance (slug: string, options?: CallOptions): Promise<OsharaAppearance>
  /** Ends the client's own connection pool (never a `dispatcher` passed in). Later calls fail with `FST_OSHARA_UNAVAILABLE`. */
  close (): Promise<void>
}

const SESSION_PATH = '/api/agents/agent-session/'
const BILLING_PATH = '/api/billing/sessions/'
const USAGE_PATH = '/api/billing/usage/'
const MAX_BODY_BYTES = 1024 * 1024
const CONNECT_TIMEOUT_MS = 3000
const TIMEOUT = Symbol('timeout')
const ABORTED = Symbol('aborted')

type Parse<T> = (text: string, status: number) => T | OsharaError

interface Endpoint<T> {
  method: 'GET' | 'POST'
  path: string
  body: string | null
  headers: string[]
  /** GET is safe to repeat after an unknown outcome; the session POST is not. */
  idempotent: boolean
  /** For the success log line of a minted session; undefined for other calls. */
  agent: string | undefined
  context: ClassifyContext
  parse: Parse<T>
}

/** Why an attempt failed, and the delay its response asked for (if any). */
interface AttemptFailure {
  error: OsharaError
  serverDelay: number | undefined
}

export function createOsharaClient (options: OsharaClientOptions): OsharaClient {
  return new SessionClient(normalizeClientOptions(options))
}

class SessionClient implements OsharaClient {
  readonly origin: string
  readonly baseUrl: string
  readonly hasApiKey: boolean
  private readonly config: ClientConfig
  private readonly dispatcher: Dispatcher
  private readonly ownsDispatcher: boolean
  private readonly breaker: CircuitBreaker | undefined
  private readonly postHeaders: string[]
  private readonly getHeaders: string[]
  private readonly sessionContext: ClassifyContext
  private readonly billingContext: ClassifyContext
  private closed = false
  private retries = 0

  constructor (config: ClientConfig) {
    this.config = config
    this.origin = config.origin
    this.baseUrl = config.upstreamOrigin + config.basePath
    this.hasApiKey = config.apiKey !== undefined
    this.ownsDispatcher = config.dispatcher === undefined
    this.dispatcher = config.dispatcher ?? new Pool(config.upstreamOrigin, { connect: { timeout: CONNECT_TIMEOUT_MS } })
    this.breaker = config.breaker === undefined ? undefined : new CircuitBreaker(config.breaker)
    const common = ['accept', 'application/json', 'origin', config.origin, 'user-agent', `fastify-oshara-voice/${VERSION}`]
    if (config.apiKey !== undefined) common.push('x-api-key', config.apiKey)
    this.getHeaders = common
    this.postHeaders = ['content-type', 'application/json', ...common]
    this.sessionContext = { origin: config.origin, baseUrl: this.baseUrl, endpoint: 'session' }
    this.billingContext = { origin: config.origin, baseUrl: this.baseUrl, endpoint: 'billing' }
  }

  get breakerState (): OsharaBreakerState {
    return this.breaker?.state(Date.now()) ?? 'closed'
  }

  get retryCount (): number {
    return this.retries
  }

  createSession (body: SessionRequest, options: PluginCallOptions = {}): Promise<OsharaSession> {
    const tracing = options[kTracing]
    if (tracing === undefined && !sessionCreateChannel.hasSubscribers) return this.postSession(body, options, undefined)
    const agent = (body as Partial<SessionRequest> | null)?.agent
    const context: OsharaSessionCreateMessage = { agent: typeof agent === 'string' ? agent : undefined, requestId: options.requestId ?? randomUUID() }
    const inSpan = tracing === undefined ? undefined : (run: () => Promise<OsharaSession>) => tracing.createSpan(context, run)
    return observe(sessionCreateChannel, inSpan, context, (trace) => this.postSession(body, options, trace), sessionCreated)
  }

  private postSession (body: SessionRequest, options: CallOptions, trace: CallTrace | undefined): Promise<OsharaSession> {
    if (!checkSessionRequest.Check(body)) {
      const issue = checkSessionRequest.Errors(body).First() as ValueError
      const where = issue.path === '' ? 'body' : issue.path.slice(1)
      return Promise.reject(new OsharaInvalidSessionError(`Invalid session request: ${where} ${issue.message}`.toLowerCase()))
    }
    const headersProblem = mcpHeadersProblem(body.mcp_headers)
    if (headersProblem !== undefined) return Promise.reject(new OsharaInvalidSessionError(`invalid session request: ${headersProblem}`))
    return this.call({
      method: 'POST',
      path: this.config.basePath + SESSION_PATH,
      body: JSON.stringify(body),
      headers: this.postHeaders,
      idempotent: false,
      agent: body.agent,
      context: this.sessionContext,
      parse: parseSession
    }, options, trace)
  }

  getSession (sessionId: string, options: PluginCallOptions = {}): Promise<OsharaSessionSummary> {
    if (!sessionLookupChannel.hasSubscribers) return this.lookup(sessionId, options, undefined)
    const context: OsharaSessionLookupMessage = { sessionId, requestId: options.requestId ?? randomUUID() }
    return observe(sessionLookupChannel, undefined, context, (trace) => this.lookup(sessionId, options, trace), sessionLookedUp)
  }

  private lookup (sessionId: string, options: PluginCallOptions, trace: CallTrace | undefined): Promise<OsharaSessionSummary> {
    if (typeof sessionId !== 'string' || sessionId === '') {
      return Promise.reject(new OsharaInvalidSessionError('getSession needs a non-empty session id'))
    }
    const tolerantLog = options[kTolerant]
    const parse = tolerantLog === undefined ? strictSummaryParser(sessionId) : tolerantSummaryParser(sessionId, tolerantLog)
    return this.read(`${BILLING_PATH}${encodeURIComponent(sessionId)}/`, parse, options, trace)
  }

  listSessions (filters: ListSessionsFilters = {}, options: CallOptions = {}): OsharaSessionList {
    const { page_size: size = MAX_PAGE_SIZE, ...selected } = filters
    let first: Promise<UsagePage> | undefined
    const fetchPage = (page: number): Promise<UsagePage> => {
      if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
        return Promise.reject(new OsharaInvalidSessionError(`listSessions page_size must be an integer from 1 to ${MAX_PAGE_SIZE}`))
      }
      const query = queryOf({ ...selected, page, page_size: size })
      return page === 1 ? (first ??= this.read(`${USAGE_PATH}?${query}`, parseUsage, options)) : this.read(`${USAGE_PATH}?${query}`, parseUsage, options)
    }
    return {
      totals: async () => totalsOf(await fetchPage(1)),
      [Symbol.asyncIterator]: () => usagePages(fetchPage, size)
    }
  }

  listFormResponses (slug: string, filters: ListFormResponsesFilters = {}, options: CallOptions = {}): AsyncIterable<OsharaFormResponse> {
    const query = queryOf(filters).toString()
    const path = `/api/agents/${encodeURIComponent(slug)}/form-responses/${query === '' ? '' : `?${query}`}`
    const read = (): Promise<OsharaFormResponse[]> => this.read(path, parseFormResponses, options)
    return { async * [Symbol.asyncIterator] () { yield * await read() } }
  }

  getAppearance (slug: string, options: CallOptions = {}): Promise<OsharaAppearance> {
    return this.read(`/api/agents/${encodeURIComponent(slug)}/appearance/`, parseAppearance, options, undefined, this.sessionContext)
  }

  /** A GET of the read API: safe to retry, and never counted by the breaker that guards minting. */
  private read<T> (path: string, parse: Parse<T>, options: CallOptions, trace?: CallTrace, context = this.billingContext): Promise<T> {
    return this.call({
      method: 'GET',
      path: this.config.basePath + path,
      body: null,
      headers: this.getHeaders,
      idempotent: true,
      agent: undefined,
      context,
      parse
    }, options, trace)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.ownsDispatcher) await this.dispatcher.close()
  }

  private async call<T> (endpoint: Endpoint<T>, options: CallOptions, trace: CallTrace | undefined): Promise<T> {
    const { signal } = options
    const requestId = trace?.requestId ?? options.requestId ?? randomUUID()
    if (signal?.aborted === true) throw aborted(requestId, 0)
    if (this.closed) throw new OsharaUnavailableError('The voice session client is closed.', { requestId })
    // Reads (GET) neither wait for nor count toward the breaker: a billing outage must not stop minting.
    const breaker = endpoint.idempotent ? undefined : this.breaker
    const wait = breaker?.admit(Date.now()) ?? 0
    if (wait > 0) {
      throw new OsharaUnavailableError('The voice service is temporarily unavailable. Try again shortly.', {
        requestId, retryAfterMs: wait, detail: 'circuit open'
      })
    }
    const { retry } = this.config
    const started = Date.now()
    const deadline = started + this.config.deadlineMs
    const log = options.log ?? this.config.logger
    let attempts = 0
    let retried429 = false
    let error: OsharaError
    for (;;) {
      attempts++
      // A retry starts only when its delay ends before the deadline, so at least 1 ms is left (timer lateness aside).
      const timeoutMs = Math.max(1, Math.min(this.config.timeoutMs, deadline - Date.now()))
      const result = await this.attempt(endpoint, timeoutMs, requestId, signal)
      if (!isFailure(result)) {
        if (trace !== undefined) trace.attempts = attempts
        breaker?.recordSuccess()
        if (endpoint.agent !== undefined && log !== undefined) logCreated(log, requestId, result as OsharaSession, endpoint.agent, attempts, started)
        return result
      }
      error = result.error
      const { serverDelay } = result
      if (attempts > retry.retries || !isRetryable(error, retry, endpoint.idempotent, serverDelay, retried429)) break
      if (serverDelay !== undefined && serverDelay > retry.maxRetryAfterMs) {
        error.retryAfterMs = serverDelay
        break
      }
      const delay = serverDelay ?? backoffDelay(retry, attempts - 1)
      if (Date.now() + delay >= deadline) break
      retried429 ||= error.code === 'FST_OSHARA_UPSTREAM_LIMIT'
      this.retries++
      log?.warn({
        requestId, attempt: attempts, code: error.code, upstreamStatus: error.upstreamStatus, delayMs: delay
      }, 'oshara: retrying upstream call')
      if (retryChannel.hasSubscribers) {
        retryChannel.publish({ requestId, attempt: attempts, code: error.code, upstreamStatus: error.upstreamStatus, delayMs: delay } satisfies OsharaRetryMessage)
      }
      try {
        await sleep(delay, undefined, { signal })
      } catch {
        error = aborted(requestId, attempts)
        break
      }
    }
    error.attempts = attempts
    error.requestId = requestId
    if (breaker !== undefined) recordForBreaker(breaker, error)
    throw error
  }

  /** One HTTP exchange, bounded by `timeoutMs` from the first byte sent to the last byte read. */
  private async attempt<T> (endpoint: Endpoint<T>, timeoutMs: number, requestId: string, signal: AbortSignal | undefined): Promise<T | AttemptFailure> {
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(TIMEOUT), timeoutMs)
    // Not AbortSignal.any: the caller's own signal may be an AbortSignal.timeout, whose reason looks like ours.
    const onCallerAbort = (): void => abort.abort(ABORTED)
    signal?.addEventListener('abort', onCallerAbort)
    let result: T | AttemptFailure
    try {
      const response = await this.dispatcher.request({
        origin: this.config.upstreamOrigin,
        path: endpoint.path,
        method: endpoint.method,
        headers: [...endpoint.headers, 'x-request-id', requestId],
        body: endpoint.body,
        signal: abort.signal
      })
      const text = await readBody(response.body, response.headers['content-length'])
      result = this.outcome(endpoint, response.statusCode, response.headers, text)
    } catch (cause) {
      result = { error: thrownError(cause, abort.signal, timeoutMs, requestId, this.baseUrl), serverDelay: undefined }
    }
    clearTimeout(timer)
    signal?.removeEventListener('abort', onCallerAbort)
    return result
  }

  /** What a response means: the parsed value, or why the attempt failed. */
  private outcome<T> (endpoint: Endpoint<T>, status: number, headers: Dispatcher.ResponseData['headers'], text: string | undefined): T | AttemptFailure {
    if (status >= 200 && status < 300) {
      const value = text === undefined ? badResponse('body over 1 MiB', status) : endpoint.parse(text, status)
      return value instanceof Error ? { error: value, serverDelay: undefined } : value
    }
    const serverDelay = serverDelayMs(headers, Date.now())
    const secrets = callSecrets(this.config.apiKey, endpoint.body)
    return { error: classifyStatus(status, text ?? '', serverDelay, endpoint.context, secrets), serverDelay }
  }
}

/**
 * Runs a call as one operation of `channel` (when it has subscribers), inside `inSpan` (the
 * `oshara.session.create` span) when given. `context` is what both see: `attempts` when it ends,
 * and what `done` adds to a success; the channel sets a failure's `error`.
 */
function observe<T, Context extends CallTrace> (
  channel: OsharaTracingChannel<Context>,
  inSpan: ((run: () => Promise<T>) => Promise<T>) | undefined,
  context: Context,
  call: (trace: Context) => Promise<T>,
  done: (context: Context, result: T) => void
): Promise<T> {
  const run = async (): Promise<T> => {
    try {
      const result = await call(context)
      done(context, result)
      return result
    } catch (error) {
      context.attempts = (error as OsharaError).attempts
      throw error
    }
  }
  const traced = channel.hasSubscribers ? () => traceOperation(channel, context, run) : run
  return inSpan === undefined ? traced() : inSpan(traced)
}

function sessionCreated (context: OsharaSessionCreateMessage, session: OsharaSession): void {
  context.sessionId = session.session_id
}

function sessionLookedUp (context: OsharaSessionLookupMessage, summary: OsharaSessionSummary): void {
  context.finalized = typeof summary.finalized_at === 'string'
}

/** What a thrown attempt means: our timeout, the caller's abort, or a network failure. */
function thrownError (cause: unknown, signal: AbortSignal, timeoutMs: number, requestId: string, baseUrl: string): OsharaError {
  if (!signal.aborted) return classifyNetworkError(cause, baseUrl)
  return signal.reason === TIMEOUT ? attemptTimeout(timeoutMs) : aborted(requestId, 0)
}

function recordForBreaker (breaker: CircuitBreaker, error: OsharaError): void {
  const count = FAILURES[error.code].breaker
  if (count === 'failure') breaker.recordFailure(Date.now())
  else if (count === 'neutral') breaker.recordNeutral()
  else breaker.recordSuccess()
}

type UsagePage = OsharaUsageTotals & { sessions: { data: OsharaSessionSummary[] } }

/**
 * The summaries of usage pages 1, 2, ... up to `ceil(total_sessions / size)`, one page at a time.
 * Only documented fields steer it: a page shorter than `size` (or empty) is the last, and a 404
 * past the first page is the end (the list shrank, or the last page was full).
 */
async function * usagePages (fetchPage: (page: number) => Promise<UsagePage>, size: number): AsyncGenerator<OsharaSessionSummary> {
  const first = await fetchPage(1)
  yield * first.sessions.data
  const last = Math.ceil(first.total_sessions / size)
  let count = first.sessions.data.length
  for (let page = 2; page <= last && count === size; page++) {
    let data: OsharaSessionSummary[]
    try {
      data = (await fetchPage(page)).sessions.data
    } catch (error) {
      if ((error as OsharaError).upstreamStatus === 404) return
      throw error
    }
    yield * data
    count = data.length
  }
}

/** The success line of a minted session: one pino line, as a hand-written route would log. */
function logCreated (log: OsharaLogger, requestId: string, session: OsharaSession, agent: string, attempts: number, started: number): void {
  log.info({ requestId, session_id: session.session_id, agent, attempts, durationMs: Date.now() - started }, 'oshara: session created')
}

function isFailure<T> (result: T | AttemptFailure): result is AttemptFailure {
  return (result as AttemptFailure).error instanceof Error
}

function aborted (requestId: string, attempts: number): OsharaAbortedError {
  return new OsharaAbortedError('The session request was aborted.', { requestId, attempts, outcome: 'unknown' })
}

/** Reads the whole body as text, or undefined when it is over 1 MiB (the rest is not read). */
function readBody (body: Dispatcher.ResponseData['body'], contentLength: string | string[] | undefined): Promise<string | undefined> {
  const declared = Number(contentLength)
  if (declared > MAX_BODY_BYTES) {
    body.destroy()
    return Promise.resolve(undefined)
  }
  // A declared length within the cap is enforced by undici itself: read it in one go.
  return declared >= 0 ? body.text() : readCapped(body)
}

/** A body of no declared length, read chunk by chunk up to the cap. */
async function readCapped (body: Dispatcher.ResponseData['body']): Promise<string | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) {
      body.destroy()
      return undefined
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, size).toString('utf8')
}

function parseJson (text: string, status: number): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return badResponse('body is not JSON', status)
  }
}

function parseSession (text: string, status: number): OsharaSession | OsharaError {
  const body = parseJson(text, status)
  if (body instanceof Error) return body as OsharaError
  if (!checkSessionResponse.Check(body)) {
    const issue = checkSessionResponse.Errors(body).First() as ValueError
    return badResponse(`not a session: ${issue.path} ${issue.message}`, status)
  }
  const session = body as OsharaSession
  session.expires_in_seconds ??= 3600
  return session
}

/** The `data` of an Oshara envelope (`{ success: true, data }`) whose shape `check` accepts. */
function parseEnvelope<T> (check: { Check: (value: unknown) => boolean }, what: string): Parse<T> {
  return (text, status) => {
    const body = parseJson(text, status)
    if (body instanceof Error) return body as OsharaError
    if (!check.Check(body)) return badResponse(`not a billing envelope with success: true and ${what}`, status)
    return (body as { data: T }).data
  }
}

/** A summary of `sessionId` with every known field as documented. */
function strictSummaryParser (sessionId: string): Parse<OsharaSessionSummary> {
  return (text, status) => sameSession(parseSummary(text, status), sessionId, status)
}

/** A summary of `sessionId`, whatever its other fields hold (each odd one logged once per process). */
function tolerantSummaryParser (sessionId: string, log: OsharaLogger): Parse<OsharaSessionSummary> {
  return (text, status) => {
    const summary = sameSession(parseSummaryCore(text, status), sessionId, status)
    if (!(summary instanceof Error)) warnOfOddFields(summary, log)
    return summary
  }
}

function sameSession (summary: OsharaSessionSummary | OsharaError, sessionId: string, status: number): OsharaSessionSummary | OsharaError {
  if (summary instanceof Error || summary.session_id === sessionId) return summary
  return badResponse(`the summary is of another session (${summary.session_id})`, status)
}

function parseAppearance (text: string, status: number): OsharaAppearance | OsharaError {
  const body = parseJson(text, status)
  if (body instanceof Error) return body as OsharaError
  return checkAppearance.Check(body) ? body as OsharaAppearance : badResponse('not an appearance object', status)
}

function parseFormResponses (text: string, status: number): OsharaFormResponse[] | OsharaError {
  const body = parseJson(text, status)
  if (body instanceof Error) return body as OsharaError
  return checkFormResponses.Check(body) ? body as OsharaFormResponse[] : badResponse('not a JSON array of form responses', status)
}

const parseSummary = parseEnvelope<OsharaSessionSummary>(checkSummaryEnvelope, 'a session summary')
const parseSummaryCore = parseEnvelope<OsharaSessionSummary>(checkSummaryCore, 'a session summary with its session_id')
const parseUsage = parseEnvelope<UsagePage>(checkUsageEnvelope, 'a usage list (total_sessions, sessions.data)')
