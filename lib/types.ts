import type { FastifyRequest, RouteShorthandOptions } from 'fastify'
import type { Static, TSchema } from '@sinclair/typebox'
import type { OsharaBreakerState } from './client/breaker.js'
import type { OsharaToolOutcome } from './observability/channels.js'
import type { CallOptions, OsharaClient } from './client/client.js'
import type { OsharaUpstreamOptions } from './client/options.js'
import type { OsharaSession, SessionOverrides, SessionRequest } from './client/schemas.js'
import type { OsharaSessionSummary } from './client/summaries.js'
import type { IdempotencyStore } from './idempotency/idempotency-store.js'
import type { SessionStore } from './limits/store.js'
import type { OsharaQuotaUsage } from './quota/quota.js'
import type { QuotaStore } from './quota/quota-store.js'
import type { ClientField } from './route/route-schemas.js'
import type { MaybePromise } from './maybe-promise.js'

// The names, defaults and checks of the option types below live in lib/options/registry.ts,
// whose groups fail the typecheck when they and these types differ by a name.

/** The user's context passed upstream as `metadata` (user_id, email, plan, ...). */
export type SessionMetadata = Record<string, unknown>

/** Route options merged into `POST {path}` (and `DELETE {path}/:session_id`): auth hooks, config, body limit, docs. */
export type OsharaRouteOptions = Pick<RouteShorthandOptions,
  'onRequest' | 'preParsing' | 'preValidation' | 'preHandler' | 'preSerialization' | 'onSend' | 'onResponse' |
  'onError' | 'onTimeout' | 'onRequestAbort' | 'config' | 'bodyLimit' | 'logLevel' | 'constraints'> & {
  /** Documentation only (e.g. for `@fastify/swagger`): the plugin owns `body`, `params` and `response`. */
    schema?: OsharaRouteDocs
  }

export interface OsharaRouteDocs {
  tags?: string[]
  summary?: string
  description?: string
  security?: Array<Record<string, string[]>>
  operationId?: string
  hide?: boolean
  deprecated?: boolean
  externalDocs?: { url: string, description?: string }
  [extension: `x-${string}`]: unknown
}

/** What `onSessionEnd` is told besides the summary. */
export interface SessionEndContext {
  sessionId: string
  /** The limiter key that held the session's slot; undefined for a session minted without one. */
  key: string | undefined
  /** The quota key its minutes and cost counted against; undefined when no quota counted it. */
  quotaKey: string | undefined
}

/** Session tracking: how often and how long the plugin asks Oshara whether a call has ended. */
export interface OsharaTrackingOptions {
  /** First lookup after minting. Default 15000. */
  firstCheckMs?: number
  /** Lookups back off (doubling) up to this interval. Default 120000. */
  maxCheckIntervalMs?: number
  /** A session not finalized after this long is dropped with a warning and its slot freed. Default 4 h. */
  maxTrackMs?: number
  /** Most lookups in flight per instance. Default 4. */
  concurrency?: number
  /** How long an instance's claim on a session lasts before another instance may take it over (a dead instance's sessions). Default 60000. */
  leaseMs?: number
  /** Where tracked sessions live. Default: `limits.store`, else a new `MemorySessionStore`. Must implement the tracking methods. */
  store?: SessionStore
}

/** Observability beyond the diagnostics channels (which need no option). */
export interface OsharaTelemetryOptions {
  /**
   * OpenTelemetry: a span `oshara.session.create` around each session request, the parent of
   * undici's attempt spans. Needs `@opentelemetry/api` installed (and your SDK set up). Default false.
   */
  tracing?: boolean
}

/** Usage quotas per key: a budget of sessions, minutes and/or cost per window. */
export interface OsharaQuotaOptions {
  /** The quota key of a request. Default: `limits.key`, else `request.ip`. */
  key?: (request: FastifyRequest) => MaybePromise<string>
  /** `'day'` or `'month'` (calendar, UTC), or fixed windows of this many milliseconds. */
  window: 'day' | 'month' | number
  /** Sessions per window, counted at mint. */
  sessions?: number | ((request: FastifyRequest) => MaybePromise<number>)
  /** Voice minutes per window, counted when a session ends (needs `apiKey` and tracking). */
  minutes?: number | ((request: FastifyRequest) => MaybePromise<number>)
  /** US dollars per window (Oshara's `estimated_cost_usd`), counted when a session ends (needs `apiKey` and tracking). */
  costUsd?: number | ((request: FastifyRequest) => MaybePromise<number>)
  /** Where usage is counted. Default: a new `MemoryQuotaStore` (one process); `RedisQuotaStore` for several instances. */
  store?: QuotaStore
  /** When the store fails or is slower than `storeTimeoutMs`: `'deny'` (503, default) or `'allow'` (serve without the quota, warn). */
  onStoreError?: 'deny' | 'allow'
  /** Longest wait for the store. Default 1000. */
  storeTimeoutMs?: number
}

/**
 * Idempotent minting: a `POST` carrying `Idempotency-Key`, repeated by the same limiter key (or IP),
 * replays the first reply instead of minting again.
 */
export interface OsharaIdempotencyOptions {
  /**
   * How long a reply is replayed, in milliseconds. Default 600000 (10 minutes); at most 3600000 (the
   * token lifetime Oshara documents by default). A reply is never kept past its own token's
   * `expires_in_seconds` either.
   */
  ttlMs?: number
  /**
   * Where replies live. Default: `limits.store`, else a new `MemorySessionStore` (one process). Must
   * implement `IdempotencyStore` (`MemorySessionStore` and `RedisSessionStore` do).
   */
  store?: IdempotencyStore
}

/**
 * Agent tools: the app's endpoints that Oshara's agent calls during a call (README "Agent tools").
 * Every session the plugin mints then carries a signature of its metadata, and
 * `fastify.oshara.tool(name, ...)` serves `POST {prefix}/{name}` for sessions this app minted only.
 */
export interface OsharaToolsOptions {
  /** The shared secret Oshara sends in `secretHeader` (the tool's `config.headers` on the character). At least 16 characters. */
  secret: string
  /** The HMAC-SHA256 key that signs session metadata (at least 32 characters). Default: derived from `secret`. */
  signingKey?: string
  /** Keys that signed earlier sessions and are still accepted (rotation); never used to sign. Default none. */
  previousSigningKeys?: string[]
  /** Path prefix of the tool routes (the plugin ignores register prefixes: give the full path). Default `/oshara/tools`. */
  prefix?: string
  /** The request header that carries `secret`. Default `x-oshara-secret`. */
  secretHeader?: string
  /** A handler's deadline: past it its `signal` aborts and the agent gets 504. Default 8000 (under Oshara's 10 s). */
  timeoutMs?: number
}

/** What a tool handler is told besides its arguments. */
export interface OsharaToolContext {
  /** Oshara's session id of the call. */
  sessionId: string
  /** The session's metadata as the app's metadata extractor returned it (signed: the user it names is the one the app minted for), without the signature. */
  metadata: SessionMetadata
  /** With `limits`, the limiter key the session was minted under (read from the session store); else undefined. */
  key: string | undefined
  request: FastifyRequest
  /** Aborts when the handler passes `tools.timeoutMs` (the agent then gets 504): pass it to your database or HTTP calls. */
  signal: AbortSignal
}

/** `fastify.oshara.tool(name, definition)`: the arguments' schema, the handler, and route options (auth hooks, config, bodyLimit, docs). */
export interface OsharaToolDefinition<Args extends TSchema = TSchema> extends OsharaRouteOptions {
  /** A TypeBox schema of the LLM's arguments (the body without `_session`), checked without coercion. */
  args: Args
  /** Returns the JSON given to the LLM. Throw an error with a 4xx `statusCode` (e.g. `OsharaToolRefusedError`) to refuse in words the agent may say. */
  handler: (args: Static<Args>, context: OsharaToolContext) => MaybePromise<unknown>
}

export interface OsharaLimitsOptions {
  /** Most active sessions per key. */
  concurrency: number
  /** The limiter key of a request. Default `request.ip`. */
  key?: (request: FastifyRequest) => MaybePromise<string>
  /** Most active sessions across all keys (your plan's concurrent-session limit). */
  global?: number
  /** Where slots live. Default: a new `MemorySessionStore` (one process). */
  store?: SessionStore
  /** Longest a slot is held without `DELETE`. Default: the session's `expires_in_seconds`. */
  holdMs?: number
  /** When the store fails or is slower than `storeTimeoutMs`: `'deny'` (503, default) or `'allow'` (serve unlimited, warn). */
  onStoreError?: 'deny' | 'allow'
  /** Longest wait for the store. Default 1000. */
  storeTimeoutMs?: number
}

export type { OsharaToolOutcome, OsharaUpstreamOptions }

/** Options shared by both forms of `OsharaVoiceOptions`. */
export interface OsharaVoiceBaseOptions {
  /** The character slug for a request. */
  agent: string | ((request: FastifyRequest) => MaybePromise<string>)
  /** Slugs the browser may pick (body `agent`, or LiveKit `room_config.agents[0].agent_name`). */
  agents?: string[]
  /** The metadata extractor: the logged-in user's context. */
  metadata?: (request: FastifyRequest) => MaybePromise<SessionMetadata>
  /** Server-chosen per-session overrides. */
  session?: (request: FastifyRequest) => MaybePromise<SessionOverrides>
  /** Fields the browser may set. Default `['language']`. */
  clientFields?: ClientField[]
  /** Allow-list for a browser-set `language` (case-insensitive). */
  languages?: string[]
  /** Route path. Default `/voice-token`. */
  path?: string
  /** `false`: no route, decorator only. Default true. */
  route?: boolean
  routeOptions?: OsharaRouteOptions
  /** Instance decorator name, or `false`. Default `'oshara'`. */
  decorator?: string | false
  /** After the upstream body is built, before the call: edit `draft`, or throw to deny. */
  beforeSession?: (request: FastifyRequest, draft: SessionRequest) => MaybePromise<void>
  /** After a session is minted, before the reply. A throw fails the request and frees its limiter slot. */
  onSession?: (request: FastifyRequest, session: OsharaSession) => MaybePromise<void>
  /** Observes every failure; cannot change the reply. */
  onSessionError?: (request: FastifyRequest, error: Error) => MaybePromise<void>
  /**
   * Called once per ended session (Oshara reported it finalized), after its slot is freed, with
   * its summary: duration, cost, transcript. Needs `apiKey`. A throw is logged and the delivery
   * retried later, a bounded number of times.
   */
  onSessionEnd?: (summary: OsharaSessionSummary, context: SessionEndContext) => MaybePromise<void>
  /** Usage quotas per key (sessions, minutes, cost per day, month or fixed window). */
  quota?: OsharaQuotaOptions
  /** OpenTelemetry spans (`{ tracing: true }`); the diagnostics channels need no option. */
  telemetry?: OsharaTelemetryOptions
  /** Session tracking; on by default when `apiKey` is set and `limits` or `onSessionEnd` is. `false`: off. */
  tracking?: OsharaTrackingOptions | false
  limits?: OsharaLimitsOptions
  /** Idempotent minting (`Idempotency-Key`): `true` for the defaults. Default off. */
  idempotency?: OsharaIdempotencyOptions | boolean
  /** Agent tools: signed session metadata, and the routes Oshara's agent calls (`fastify.oshara.tool`). */
  tools?: OsharaToolsOptions
  /**
   * Origins of frontends on other sites allowed to call the routes from a browser. Cross-site
   * browser requests from any other origin get 403 `FST_OSHARA_ORIGIN_NOT_ALLOWED`; same-origin
   * and same-site pages, native apps and servers need nothing here.
   */
  allowedOrigins?: string[]
  /** The route is open on purpose (or authenticated by an app-wide hook): no startup warning about a missing auth hook. Default false. */
  public?: boolean
  /**
   * Once the app is ready, without delaying it, check each static agent slug (`agent` when a string,
   * and `agents`) with one `GET /api/agents/{slug}/appearance/` (public, Origin-gated, no side
   * effects); an unknown slug, an origin not allowed or an unreachable `baseUrl` is logged at warn
   * with the fix. Default true.
   */
  checkOnReady?: boolean
  /** Reshape the 200 reply. Default: the fields listed in the README. */
  response?: (session: OsharaSession, request: FastifyRequest) => Record<string, unknown>
}

/** With its own client: `origin` is required, the upstream options apply. */
export interface OsharaVoiceOwnClientOptions extends OsharaVoiceBaseOptions, OsharaUpstreamOptions {
  /** Sent upstream as `Origin`; must be on the character's `allowed_origins`. */
  origin: string
  client?: undefined
}

/** With a shared client: the upstream options belong to `createOsharaClient`. */
export type OsharaVoiceSharedClientOptions = OsharaVoiceBaseOptions & { [K in keyof OsharaUpstreamOptions]?: never } & {
  /** Share one client between registrations. */
  client: OsharaClient
  /** Optional; when given it must equal the client's origin. */
  origin?: string
}

export type OsharaVoiceOptions = OsharaVoiceOwnClientOptions | OsharaVoiceSharedClientOptions

/** Input of `fastify.oshara.createSession`: the upstream body; `agent` defaults to the plugin's string `agent`. */
export type CreateSessionInput = Omit<SessionRequest, 'agent'> & { agent?: string }

export interface CreateSessionOptions extends Pick<CallOptions, 'signal' | 'requestId'> {
  /** Apply the limiter to this key (and scope `idempotencyKey` to it). */
  key?: string
  /** With `quota`: count the session's minutes and cost against this quota key when it ends (the budget is not checked here). */
  quotaKey?: string
  /**
   * Needs the `idempotency` option: a repeat with the same key (and the same `key` and `input`) within
   * `idempotency.ttlMs` resolves to the first call's session without minting again. 1 to 255 visible
   * ASCII characters.
   */
  idempotencyKey?: string
}

/** `fastify.oshara.stats()`: this registration's counters since it started. */
export interface OsharaStats {
  /** Sessions Oshara created (route and decorator), including those whose `onSession` or reply then failed. */
  minted: number
  /** Failed session requests (route and decorator) by error code, e.g. `{ FST_OSHARA_SESSION_LIMIT: 3 }`; an error without a string `code` counts as `UNKNOWN`. */
  failed: Record<string, number>
  /** Upstream retries made by the client (session and read calls; registrations sharing a client share it). */
  retries: number
  /** The client's circuit breaker now. */
  breakerState: OsharaBreakerState
  /** Live limiter slots (pending and bound, every key) when the limiter's store is a `MemorySessionStore`; undefined without `limits` or with another store. */
  activeSlots: number | undefined
  /** Tracked sessions this instance found ended (each once, before `onSessionEnd`); 0 without tracking. */
  ended: number
  /** Quota refusals (429 `FST_OSHARA_QUOTA_EXCEEDED`), also counted in `failed`. */
  quotaRefusals: number
  /** Tool calls by tool name and outcome, e.g. `{ lookup_order: { ok: 12, forbidden: 1 } }`; a tool appears once registered. */
  tools: Record<string, Partial<Record<OsharaToolOutcome, number>>>
}

/** `fastify.oshara` (or the name given by `decorator`). */
export interface OsharaDecorator {
  readonly client: OsharaClient
  /** Mint a session for a native app or a server-initiated call; same client, errors and limiter as the route. */
  createSession (input: CreateSessionInput, options?: CreateSessionOptions): Promise<OsharaSession>
  /** The key's use of the current quota window (needs `quota`), e.g. for the app's own UI. */
  usage (key: string): Promise<OsharaQuotaUsage>
  /** Free the limiter slot of a session (with `key`: only when that key holds it); false when none was freed (or no `limits`). */
  releaseSession (sessionId: string, options?: { key?: string }): Promise<boolean>
  /** A snapshot of this registration's counters (cheap: no store or upstream call). */
  stats (): OsharaStats
  /**
   * Serves `POST {tools.prefix}/{name}` for Oshara's agent (needs `tools`): secret, signature,
   * ended session, arguments, then `handler` within `tools.timeoutMs`. Call it before the app is ready.
   */
  tool<Args extends TSchema> (name: string, definition: OsharaToolDefinition<Args>): void
}

declare module 'fastify' {
  interface FastifyInstance {
    oshara: OsharaDecorator
  }
}
