import { randomUUID } from 'node:crypto'
import type { ValueError } from '@sinclair/typebox/errors'
import { failure, type OsharaError } from '../errors.js'
import {
  type OsharaSessionCreateMessage,
  type OsharaSessionLookupMessage,
  type OsharaTracingChannel,
  sessionCreateChannel,
  sessionLookupChannel,
  traceOperation
} from '../observability/channels.js'
import { kTracing, type SessionTracing } from '../observability/tracing.js'
import type { OsharaAppearance } from './appearance.js'
import type { OsharaBreakerState } from './breaker.js'
import type { ClassifyContext } from './classify.js'
import { type ClientConfig, normalizeClientOptions, type OsharaClientOptions, type OsharaLogger } from './options.js'
import {
  type Parse,
  parseAppearance,
  parseFormResponses,
  parseSession,
  parseUsage,
  strictSummaryParser,
  tolerantSummaryParser,
  type UsagePage
} from './parse.js'
import { checkSessionRequest, mcpHeadersProblem, type OsharaSession, type SessionRequest, sessionJson } from './schemas.js'
import {
  type ListFormResponsesFilters,
  type ListSessionsFilters,
  MAX_PAGE_SIZE,
  type OsharaFormResponse,
  type OsharaSessionList,
  type OsharaSessionSummary,
  queryOf,
  totalsOf
} from './summaries.js'
import { type CallerSignal, type CallOptions, type CallTrace, Transport, type TransportCallOptions } from './transport.js'
import { usagePages } from './usage-pages.js'

export type { CallOptions }

/** A lookup for session tracking, with where to log odd fields: only `session_id` and `finalized_at` must pass their checks (see summary-fields.ts). */
export const kTolerant = Symbol('oshara tolerant lookup')

/** The plugin's own call options: with `telemetry.tracing`, what makes the `oshara.session.create` span. Not public API. */
export interface PluginCallOptions extends CallOptions {
  [kTracing]?: SessionTracing | undefined
  [kTolerant]?: OsharaLogger | undefined
}

/** Minting's call options: the route's signal is a `CallerSignal` (see `createSessionThrough`). */
export interface MintCallOptions extends Omit<PluginCallOptions, 'signal'>, TransportCallOptions {}

/**
 * Mints through `client`. The plugin's own client takes any `CallerSignal`; a client of the app's
 * own (anything else that implements `OsharaClient`) gets the standard `AbortSignal` it was
 * promised, aborted with the caller's.
 */
export function createSessionThrough (client: OsharaClient, body: SessionRequest, options: MintCallOptions): Promise<OsharaSession> {
  if (client instanceof SessionClient) return client.createSession(body, options)
  return client.createSession(body, { ...options, signal: standardSignal(options.signal) })
}

function standardSignal (signal: CallerSignal | undefined): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal
  const controller = new AbortController()
  if (signal.aborted) controller.abort()
  else signal.addEventListener('abort', () => { controller.abort() })
  return controller.signal
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

export function createOsharaClient (options: OsharaClientOptions): OsharaClient {
  return clientOf(normalizeClientOptions(options))
}

/** A client over options already checked (`normalizeClientOptions`): makes its connection pool, throws nothing. */
export function clientOf (config: ClientConfig): OsharaClient {
  return new SessionClient(config.origin, config.basePath, config.apiKey !== undefined, new Transport(config))
}

/** The endpoints Oshara documents, over one transport; each call observed on its channel when someone listens. */
class SessionClient implements OsharaClient {
  readonly origin: string
  readonly baseUrl: string
  readonly hasApiKey: boolean
  private readonly basePath: string
  private readonly transport: Transport
  private readonly sessionContext: ClassifyContext
  private readonly billingContext: ClassifyContext

  constructor (origin: string, basePath: string, hasApiKey: boolean, transport: Transport) {
    this.origin = origin
    this.basePath = basePath
    this.baseUrl = transport.baseUrl
    this.hasApiKey = hasApiKey
    this.transport = transport
    this.sessionContext = { origin, baseUrl: this.baseUrl, endpoint: 'session' }
    this.billingContext = { origin, baseUrl: this.baseUrl, endpoint: 'billing' }
  }

  get breakerState (): OsharaBreakerState {
    return this.transport.breakerState
  }

  get retryCount (): number {
    return this.transport.retryCount
  }

  createSession (body: SessionRequest, options: MintCallOptions = {}): Promise<OsharaSession> {
    const tracing = options[kTracing]
    if (tracing === undefined && !sessionCreateChannel.hasSubscribers) return this.postSession(body, options, undefined)
    const agent = (body as Partial<SessionRequest> | null)?.agent
    const context: OsharaSessionCreateMessage = { agent: typeof agent === 'string' ? agent : undefined, requestId: options.requestId ?? randomUUID() }
    const inSpan = tracing === undefined ? undefined : (run: () => Promise<OsharaSession>) => tracing.createSpan(context, run)
    return observe(sessionCreateChannel, inSpan, context, (trace) => this.postSession(body, options, trace), sessionCreated)
  }

  private postSession (body: SessionRequest, options: TransportCallOptions, trace: CallTrace | undefined): Promise<OsharaSession> {
    if (!checkSessionRequest.Check(body)) {
      const issue = checkSessionRequest.Errors(body).First() as ValueError
      const where = issue.path === '' ? 'body' : issue.path.slice(1)
      // A described field (language) says what it must be, not the pattern it failed; never its value.
      const problem = issue.schema.description === undefined ? `${where} ${issue.message}`.toLowerCase() : `${where} is not a ${issue.schema.description}`
      return Promise.reject(failure('FST_OSHARA_INVALID_SESSION', 'invalid-request', { words: { problem } }))
    }
    const headersProblem = mcpHeadersProblem(body.mcp_headers)
    if (headersProblem !== undefined) return Promise.reject(failure('FST_OSHARA_INVALID_SESSION', 'invalid-request', { words: { problem: headersProblem } }))
    let json: string
    try {
      json = sessionJson(body)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.transport.call({
      method: 'POST',
      path: this.basePath + SESSION_PATH,
      body: json,
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
      return Promise.reject(failure('FST_OSHARA_INVALID_SESSION', 'no-session-id'))
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
        return Promise.reject(failure('FST_OSHARA_INVALID_SESSION', 'page-size', { words: { max: MAX_PAGE_SIZE } }))
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
    return this.transport.call({
      method: 'GET',
      path: this.basePath + path,
      body: null,
      idempotent: true,
      agent: undefined,
      context,
      parse
    }, options, trace)
  }

  close (): Promise<void> {
    return this.transport.close()
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
