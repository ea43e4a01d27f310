import type { FastifyRequest } from 'fastify'
import type { OsharaClient } from '../client/client.js'
import { CLIENT_DEFAULTS, type OsharaUpstreamOptions, UPSTREAM_OPTION_NAMES } from '../client/options.js'
import { LANGUAGE_TAG } from '../client/schemas.js'
import { invalidOption } from '../errors.js'
import { DEFAULT_STORE_TIMEOUT_MS } from '../limits/store-call.js'
import { type SessionStore, TRACKING_METHODS, type TrackingSessionStore } from '../limits/store.js'
import { IDEMPOTENCY_METHODS, type IdempotencyStore } from '../idempotency/idempotency-store.js'
import type { QuotaBudget } from '../quota/quota.js'
import type { QuotaStore } from '../quota/quota-store.js'
import type { QuotaWindow } from '../quota/window.js'
import { ROUTE_DEFAULTS, ROUTE_OPTIONS, type RouteSettings } from '../route/route-options.js'
import { CLIENT_FIELDS, type ClientField } from '../route/route-schemas.js'
import { TOOLS_DEFAULTS, TOOLS_OPTIONS } from '../tools/tools-options.js'
import type {
  OsharaIdempotencyOptions,
  OsharaLimitsOptions,
  OsharaQuotaOptions,
  OsharaTelemetryOptions,
  OsharaTrackingOptions,
  OsharaVoiceBaseOptions,
  OsharaVoiceOwnClientOptions
} from '../types.js'
import { describe, functionOption, integerOption, normalizeOrigin, staticPathOption, stringListOption } from '../validate.js'
import { duration, flag, integer, type Normalized, normalizeGroup, optional, optionalDuration, optionalInteger, type OptionGroup, optionNames, type OptionSpec, userFunction } from './spec.js'

export { checkGroup, type Normalized } from './spec.js'
export { UPSTREAM_OPTION_NAMES }
export { ROUTE_DOC_OPTIONS, ROUTE_OPTIONS, type RouteSettings } from '../route/route-options.js'
export { TOOLS_OPTIONS } from '../tools/tools-options.js'

/**
 * The plugin's options: its own group, composed with the client's (client/options.ts). Each group
 * is declared `satisfies OptionGroup<TheOptionsType>`, so an option type without an entry (or an
 * entry without an option) fails the typecheck; the lists of accepted names are the groups' keys.
 * Checks run once, at register, never per request.
 */

/** The defaults of every option that has one. The checks below fall back to these values. */
export const DEFAULTS = Object.freeze({
  plugin: Object.freeze({
    path: '/voice-token',
    route: true,
    decorator: 'oshara',
    clientFields: Object.freeze(['language'] as const),
    public: false,
    checkOnReady: true
  }),
  route: ROUTE_DEFAULTS,
  ...CLIENT_DEFAULTS,
  tracking: Object.freeze({
    firstCheckMs: 15_000,
    maxCheckIntervalMs: 120_000,
    maxTrackMs: 4 * 60 * 60 * 1000,
    concurrency: 4,
    leaseMs: 60_000
  }),
  telemetry: Object.freeze({
    tracing: false
  } satisfies { readonly [K in keyof OsharaTelemetryOptions]-?: unknown }),
  /** `ttlMs` at most `maxTtlMs`: Oshara's documented default token lifetime, the only one known before a session is minted. */
  idempotency: Object.freeze({
    ttlMs: 600_000,
    maxTtlMs: 3_600_000
  }),
  tools: TOOLS_DEFAULTS,
  /** Also: `store` is a new `MemorySessionStore` per registration; `holdMs` the session's `expires_in_seconds`; no `global` limit. */
  limits: Object.freeze({
    key: (request: FastifyRequest): string => request.ip,
    onStoreError: 'deny' as const,
    storeTimeoutMs: DEFAULT_STORE_TIMEOUT_MS
  })
})

// Session limits.

const STORE_METHODS = ['acquire', 'bind', 'release', 'releaseSession']

/** A store given for `limits.store` or `tracking.store`; left out, the registration makes a `MemorySessionStore`. */
function checkStore (value: unknown, path: string): SessionStore {
  if (value === null || typeof value !== 'object' || !STORE_METHODS.every((method) => typeof (value as Record<string, unknown>)[method] === 'function')) {
    throw invalidOption(path, `must implement ${STORE_METHODS.join(', ')}, got ${describe(value)}`, 'pass new MemorySessionStore(), new RedisSessionStore({ client }), or your own SessionStore')
  }
  return value as SessionStore
}

/** A store for `tracking.store` (or `limits.store` when tracking is on): it must implement the tracking methods too. */
export function checkTrackingStore (store: SessionStore, path: string): TrackingSessionStore {
  const missing = TRACKING_METHODS.filter((method) => typeof (store as unknown as Record<string, unknown>)[method] !== 'function')
  if (missing.length > 0) {
    throw invalidOption(path, `does not implement ${missing.join(', ')}, which session tracking needs`,
      'use MemorySessionStore or RedisSessionStore, implement the tracking methods (see the store contract in the README), or set tracking: false')
  }
  return store as TrackingSessionStore
}

export const TRACKING_OPTIONS = {
  firstCheckMs: duration(DEFAULTS.tracking.firstCheckMs, 1),
  maxCheckIntervalMs: duration(DEFAULTS.tracking.maxCheckIntervalMs, 1),
  maxTrackMs: duration(DEFAULTS.tracking.maxTrackMs, 1),
  concurrency: integer(DEFAULTS.tracking.concurrency, 1, 100),
  leaseMs: duration(DEFAULTS.tracking.leaseMs, 1),
  store: optional(checkStore)
} satisfies OptionGroup<OsharaTrackingOptions>

function checkOnStoreError (value: unknown, path: string): 'deny' | 'allow' {
  const given = value ?? DEFAULTS.limits.onStoreError
  if (given !== 'deny' && given !== 'allow') {
    throw invalidOption(path, `must be 'deny' or 'allow', got ${describe(given)}`, "'deny' answers 503 while the store is down; 'allow' serves without limits and logs a warning")
  }
  return given
}

// Usage quotas.

const QUOTA_STORE_METHODS = ['consume', 'refund', 'record', 'usage']

/** A store given for `quota.store`; left out, the registration makes a `MemoryQuotaStore`. */
function checkQuotaStore (value: unknown, path: string): QuotaStore {
  if (value === null || typeof value !== 'object' || !QUOTA_STORE_METHODS.every((method) => typeof (value as Record<string, unknown>)[method] === 'function')) {
    throw invalidOption(path, `must implement ${QUOTA_STORE_METHODS.join(', ')}, got ${describe(value)}`, 'pass new MemoryQuotaStore(), new RedisQuotaStore({ client }), or your own QuotaStore')
  }
  return value as QuotaStore
}

function checkWindow (value: unknown, path: string): QuotaWindow {
  if (value === 'day' || value === 'month' || (typeof value === 'number' && Number.isInteger(value) && value >= 1000)) return value
  throw invalidOption(path, `must be 'day', 'month' or a number of milliseconds >= 1000, got ${describe(value)}`, "e.g. window: 'day' (a calendar day, UTC), or window: 60 * 60_000 for fixed hours")
}

/** A budget: a number >= 0, or a function of the request (its plan). */
function budget (unit: string): OptionSpec<QuotaBudget | undefined> {
  return {
    callback: true,
    check: (value, path) => {
      if (value === undefined || typeof value === 'function') return value as QuotaBudget | undefined
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        throw invalidOption(path, `must be a number >= 0 or a function of the request, got ${describe(value)}`, `e.g. ${path.slice(path.indexOf('.') + 1)}: 10, or (request) => request.user.plan === 'pro' ? 300 : 10 (${unit})`)
      }
      return value
    }
  }
}

export const QUOTA_OPTIONS = {
  key: userFunction<OsharaQuotaOptions['key']>('(request) => string, e.g. (request) => request.user.id'),
  window: { check: checkWindow },
  sessions: budget('sessions per window'),
  minutes: budget('voice minutes per window'),
  costUsd: budget('US dollars per window'),
  store: optional(checkQuotaStore),
  onStoreError: { check: checkOnStoreError },
  storeTimeoutMs: duration(DEFAULTS.limits.storeTimeoutMs, 1)
} satisfies OptionGroup<OsharaQuotaOptions>

// Observability.

/** `telemetry`: `tracing` loads `@opentelemetry/api` at register (see observability/tracing.ts). */
export const TELEMETRY_OPTIONS = {
  tracing: flag(DEFAULTS.telemetry.tracing)
} satisfies OptionGroup<OsharaTelemetryOptions>

export const LIMIT_OPTIONS = {
  concurrency: {
    check: (value, path) => {
      if (value === undefined) throw invalidOption(path, 'is required', 'set the most active sessions per key, e.g. limits: { concurrency: 2 }')
      return integerOption(path, value, { min: 1 })
    }
  },
  key: {
    callback: true,
    check: (value, path) => functionOption<NonNullable<OsharaLimitsOptions['key']>>(path, value, '(request) => string, e.g. (request) => request.user.id') ?? DEFAULTS.limits.key
  },
  global: optionalInteger(1),
  store: optional(checkStore),
  holdMs: optionalDuration(1, "the session's expires_in_seconds; with session tracking, tracking.maxTrackMs"),
  onStoreError: { check: checkOnStoreError },
  storeTimeoutMs: duration(DEFAULTS.limits.storeTimeoutMs, 1)
} satisfies OptionGroup<OsharaLimitsOptions>

// Idempotent minting.

/** A store for replies (`idempotency.store`, or the `limits.store` it defaults to): it must implement `IdempotencyStore`. */
export function checkIdempotencyStore (store: unknown, path: string): IdempotencyStore {
  const missing = IDEMPOTENCY_METHODS.filter((method) => typeof (store as Record<string, unknown> | null)?.[method] !== 'function')
  if (missing.length > 0) {
    throw invalidOption(path, `does not implement ${missing.join(', ')}, which idempotency needs`,
      'use MemorySessionStore or RedisSessionStore, implement IdempotencyStore (see the README), or pass idempotency: { store }')
  }
  return store as IdempotencyStore
}

function checkIdempotencyTtl (value: unknown, path: string): number {
  const { ttlMs, maxTtlMs } = DEFAULTS.idempotency
  if (value === undefined) return ttlMs
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > maxTtlMs) {
    throw invalidOption(path, `must be an integer between 1 and ${maxTtlMs}, got ${describe(value)}`,
      `a replayed reply carries the first token, which lives expires_in_seconds (3600 s by Oshara's default): set ${path} to at most ${maxTtlMs} (default ${ttlMs})`)
  }
  return value
}

export const IDEMPOTENCY_OPTIONS = {
  ttlMs: { check: checkIdempotencyTtl },
  store: optional(checkIdempotencyStore)
} satisfies OptionGroup<OsharaIdempotencyOptions>

function checkIdempotency (value: unknown, path: string): Normalized<typeof IDEMPOTENCY_OPTIONS> | undefined {
  if (value === undefined || value === false) return undefined
  return normalizeGroup(IDEMPOTENCY_OPTIONS, value === true ? {} : value, path)
}

// The plugin.

type AgentResolver = Exclude<OsharaVoiceBaseOptions['agent'], string>

function checkAgent (value: unknown, path: string): { agentSlug: string | undefined, resolveAgent: AgentResolver | undefined } {
  if (typeof value === 'string' && value !== '') return { agentSlug: value, resolveAgent: undefined }
  if (typeof value === 'function') return { agentSlug: undefined, resolveAgent: value as AgentResolver }
  throw invalidOption(path, `is required and must be a slug or a function, got ${describe(value)}`, "pass the character slug, e.g. agent: 'support-bot', or (request) => slug")
}

function checkClientFields (value: unknown, path: string): ClientField[] {
  if (value === undefined) return [...DEFAULTS.plugin.clientFields]
  if (!Array.isArray(value) || !value.every((field) => (CLIENT_FIELDS as readonly unknown[]).includes(field))) {
    throw invalidOption(path, `must be an array of ${CLIENT_FIELDS.map((f) => `'${f}'`).join(', ')}, got ${describe(value)}`,
      "list only fields the browser may set, e.g. ['language']; metadata and mcp_headers are server-only (use the metadata and session options)")
  }
  return [...new Set(value as ClientField[])]
}

function checkLanguages (value: unknown, path: string): ReadonlySet<string> | undefined {
  const languages = stringListOption(path, value, "list BCP-47 tags, e.g. ['en', 'fr-CA']")
  const badTag = languages?.find((tag) => !LANGUAGE_TAG.test(tag) || tag.length > 35)
  if (badTag !== undefined) throw invalidOption(path, `holds ${describe(badTag)}, which is not a BCP-47 tag`, "use tags such as 'en' or 'pt-BR'")
  return languages === undefined ? undefined : new Set(languages.map((tag) => tag.toLowerCase()))
}

function checkPath (value: unknown, path: string): string {
  if (value === undefined) return DEFAULTS.plugin.path
  return staticPathOption(path, value, "e.g. path: '/api/voice-token' (the plugin ignores register prefixes: give the full path)")
}

function checkRoute (value: unknown, path: string): boolean {
  const route = value ?? DEFAULTS.plugin.route
  if (typeof route !== 'boolean') throw invalidOption(path, `must be a boolean, got ${describe(route)}`, 'set route: false for decorator-only use')
  return route
}

function checkDecorator (value: unknown, path: string): string | false {
  if (value === undefined) return DEFAULTS.plugin.decorator
  if (value === false || (typeof value === 'string' && /^[A-Za-z_$][\w$]*$/.test(value))) return value
  throw invalidOption(path, `must be an identifier or false, got ${describe(value)}`, "e.g. decorator: 'osharaSales', or false for none")
}

function checkAllowedOrigins (value: unknown, path: string): ReadonlySet<string> {
  if (value === undefined) return new Set()
  if (!Array.isArray(value)) throw invalidOption(path, `must be an array of origins, got ${describe(value)}`, "list the origins of your frontends on other sites, e.g. ['https://app.example.com']")
  return new Set(value.map((origin, index) => normalizeOrigin(`${path}[${index}]`, origin)))
}

function checkClient (value: unknown, path: string): OsharaClient {
  const client = value as Partial<OsharaClient> | null
  if (client === null || typeof client !== 'object' || typeof client.createSession !== 'function' || typeof client.origin !== 'string') {
    throw invalidOption(path, `must be an OsharaClient, got ${describe(client)}`, 'pass createOsharaClient({ origin, ... }), or leave it out')
  }
  return client as OsharaClient
}

/**
 * The plugin's options besides `UPSTREAM_OPTIONS` (which its own client checks). `origin` is
 * optional here: the client requires it, a shared `client` brings its own.
 */
export const PLUGIN_OPTIONS = {
  origin: optional((value, path) => normalizeOrigin(path, value)),
  agent: { check: checkAgent },
  agents: { check: (value, path) => stringListOption(path, value, "list the slugs the browser may pick, e.g. ['support-bot', 'sales-bot']") },
  metadata: userFunction<OsharaVoiceBaseOptions['metadata']>('(request) => ({ user_id: request.user.id, ... })'),
  session: userFunction<OsharaVoiceBaseOptions['session']>('(request) => ({ language, greeting, ... })'),
  clientFields: { check: checkClientFields },
  languages: { check: checkLanguages },
  path: { check: checkPath },
  route: { check: checkRoute },
  routeOptions: { check: (value, path): RouteSettings => normalizeGroup(ROUTE_OPTIONS, value === undefined ? {} : value, path) as RouteSettings },
  decorator: { check: checkDecorator },
  beforeSession: userFunction<OsharaVoiceBaseOptions['beforeSession']>('(request, draft) => { ... }'),
  onSession: userFunction<OsharaVoiceBaseOptions['onSession']>('(request, session) => { ... }'),
  onSessionError: userFunction<OsharaVoiceBaseOptions['onSessionError']>('(request, error) => { ... }'),
  limits: optional((value, path) => normalizeGroup(LIMIT_OPTIONS, value, path)),
  idempotency: { check: checkIdempotency },
  response: userFunction<OsharaVoiceBaseOptions['response']>('(session, request) => ({ ... })'),
  client: optional(checkClient),
  allowedOrigins: { check: checkAllowedOrigins },
  public: flag(DEFAULTS.plugin.public),
  checkOnReady: flag(DEFAULTS.plugin.checkOnReady),
  quota: optional((value, path) => normalizeGroup(QUOTA_OPTIONS, value, path)),
  telemetry: optional((value, path) => normalizeGroup(TELEMETRY_OPTIONS, value, path)),
  onSessionEnd: userFunction<OsharaVoiceBaseOptions['onSessionEnd']>('(summary, { sessionId, key }) => { ... }'),
  tracking: {
    check: (value, path) => value === undefined || value === false ? value : normalizeGroup(TRACKING_OPTIONS, value, path)
  },
  tools: optional((value, path) => normalizeGroup(TOOLS_OPTIONS, value, path))
} satisfies OptionGroup<Omit<OsharaVoiceOwnClientOptions, keyof OsharaUpstreamOptions>>

/** Every name `register` accepts (in the order the error messages list them). */
export const PLUGIN_OPTION_NAMES: readonly string[] = ['origin', ...UPSTREAM_OPTION_NAMES, ...optionNames(PLUGIN_OPTIONS).filter((name) => name !== 'origin')]
