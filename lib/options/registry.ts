import type { FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import type { BreakerOptions } from '../client/breaker.js'
import type { OsharaClient } from '../client/client.js'
import type { OsharaClientOptions, OsharaLogger } from '../client/options.js'
import type { RetryOptions, RetryPolicy } from '../client/retry.js'
import { invalidOption } from '../errors.js'
import { MemorySessionStore } from '../limits/memory-store.js'
import { type SessionStore, TRACKING_METHODS, type TrackingSessionStore } from '../limits/store.js'
import { MemoryQuotaStore } from '../quota/memory-quota-store.js'
import type { QuotaBudget } from '../quota/quota.js'
import type { QuotaStore } from '../quota/quota-store.js'
import type { QuotaWindow } from '../quota/window.js'
import { CLIENT_FIELDS, type ClientField } from '../route/route-schemas.js'
import type {
  OsharaLimitsOptions,
  OsharaQuotaOptions,
  OsharaRouteDocs,
  OsharaRouteOptions,
  OsharaTelemetryOptions,
  OsharaToolsOptions,
  OsharaTrackingOptions,
  OsharaUpstreamOptions,
  OsharaVoiceBaseOptions,
  OsharaVoiceOwnClientOptions
} from '../types.js'
import {
  booleanOption,
  describe,
  functionOption,
  integerOption,
  isPlainObject,
  methodsOption,
  normalizeOrigin,
  objectOption,
  refuseUnsetFunctions,
  stringListOption
} from '../validate.js'

/**
 * Every option of the plugin and the client: its name, its default and its check, in one place.
 * Each group is declared `satisfies OptionGroup<TheOptionsType>`, so an option type without an
 * entry (or an entry without an option) fails the typecheck; the lists of accepted names are the
 * groups' keys. Checks run once, at register (or `createOsharaClient`), never per request.
 */

/** The defaults of every option that has one. The checks below fall back to these values. */
export const DEFAULTS = Object.freeze({
  plugin: Object.freeze({
    path: '/voice-token',
    route: true,
    decorator: 'oshara',
    clientFields: Object.freeze(['language'] as const),
    public: false
  }),
  route: Object.freeze({
    /** Bytes; a token request is tiny (Fastify's own default is 1 MiB). */
    bodyLimit: 16 * 1024
  }),
  client: Object.freeze({
    baseUrl: 'https://api.oshara.ai',
    timeoutMs: 10000,
    deadlineMs: 15000
  }),
  retry: Object.freeze({
    retries: 2,
    minDelayMs: 250,
    maxDelayMs: 2000,
    maxRetryAfterMs: 5000,
    statusCodes: Object.freeze([503] as const),
    onTimeout: false,
    on429: false
  } satisfies { readonly [K in keyof RetryOptions]-?: unknown }),
  breaker: Object.freeze({
    failureThreshold: 5,
    cooldownMs: 10000
  } satisfies { readonly [K in keyof BreakerOptions]-?: unknown }),
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
  /** Also: `signingKey` is derived from `secret`; signatures hold for 1 h (Oshara's token lifetime) plus `tracking.maxTrackMs`. */
  tools: Object.freeze({
    prefix: '/oshara/tools',
    secretHeader: 'x-oshara-secret',
    timeoutMs: 8000
  }),
  /** Also: `store` is a new `MemorySessionStore` per registration; `holdMs` the session's `expires_in_seconds`; no `global` limit. */
  limits: Object.freeze({
    key: (request: FastifyRequest): string => request.ip,
    onStoreError: 'deny' as const,
    storeTimeoutMs: 1000
  })
})

/** One option: its check, which also applies the default. */
export interface OptionSpec<T = unknown> {
  /**
   * `value` is undefined when the option is left out. Returns the normalised value; throws
   * `FST_OSHARA_INVALID_OPTIONS` naming `path` (e.g. `limits.holdMs`) and the fix.
   */
  readonly check: (value: unknown, path: string) => T
  /** A function option: given as `undefined` or `null` it is refused (a hook read before it exists). */
  readonly callback?: true
}

/** The option names of `T`, without index signatures such as `x-${string}`. */
export type OptionName<T> = { [K in keyof T]-?: string extends K ? never : K extends `x-${string}` ? never : K }[keyof T]

/** Exactly one entry per option of `T`: a missing entry fails `satisfies`, an extra one the excess-property check. */
export type OptionGroup<T> = { readonly [K in OptionName<T>]: OptionSpec }

/** What a group's checks return. */
export type Normalized<G> = { readonly [K in keyof G]: G[K] extends OptionSpec<infer T> ? T : never }

export function optionNames<G extends object> (group: G): Array<keyof G & string> {
  return Object.keys(group) as Array<keyof G & string>
}

/** Checks an object's options against `group` (unknown keys are the caller's concern): unset callbacks first, then each check. */
export function checkGroup<G extends object> (group: G, object: Record<string, unknown>, prefix: string): Normalized<G> {
  const entries = Object.entries(group) as Array<[string, OptionSpec]>
  refuseUnsetFunctions(prefix, object, entries.filter(([, spec]) => spec.callback === true).map(([name]) => name))
  const normalized: Record<string, unknown> = {}
  for (const [name, spec] of entries) {
    const value = spec.check(object[name], prefix + name)
    // Left-out options without a default stay absent (they are spread into Fastify's route options).
    if (value !== undefined) normalized[name] = value
  }
  return normalized as Normalized<G>
}

/** A nested option object (`limits`, `retry`, ...): a plain object with only `group`'s keys, checked. */
export function normalizeGroup<G extends object> (group: G, value: unknown, path: string, prefix = `${path}.`): Normalized<G> {
  return checkGroup(group, objectOption(path, value, optionNames(group)), prefix)
}

// Spec builders for the common shapes.

function integer (fallback: number, min: number, max?: number): OptionSpec<number> {
  return { check: (value, path) => integerOption(path, value, fallback, min, max) }
}

function optionalInteger (min: number): OptionSpec<number | undefined> {
  return { check: (value, path) => value === undefined ? undefined : integerOption(path, value, min, min) }
}

function flag (fallback: boolean): OptionSpec<boolean> {
  return { check: (value, path) => booleanOption(path, value, fallback) }
}

function userFunction<F> (signature: string): OptionSpec<F | undefined> {
  return { callback: true, check: (value, path) => functionOption<F>(path, value, signature) }
}

/** Passed on as given: Fastify checks its route options when the route is added; the docs are for `@fastify/swagger`. */
function asGiven<T> (): OptionSpec<T | undefined> {
  return { check: (value) => value as T | undefined }
}

function optional<T> (check: (value: unknown, path: string) => T): OptionSpec<T | undefined> {
  return { check: (value, path) => value === undefined ? undefined : check(value, path) }
}

// The client.

function checkBaseUrl (value: unknown, path: string): URL {
  const fix = "set baseUrl to the Oshara API root, e.g. 'https://api.oshara.ai' (or the emulator's url)"
  let url: URL | undefined
  try {
    url = typeof value === 'string' ? new URL(value) : undefined
  } catch {}
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw invalidOption(path, `must be an absolute http(s) URL, got ${describe(value)}`, fix)
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw invalidOption(path, 'must not carry a query, fragment or credentials', fix)
  }
  return url
}

function checkApiKey (value: unknown, path: string): string {
  // Never echo the value: it is a secret.
  if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value)) {
    throw invalidOption(path, 'must be a non-empty string of printable characters without spaces', 'pass the Oshara API key (sk_...) from your environment, e.g. process.env.OSHARA_API_KEY')
  }
  return value
}

function checkStatusCodes (value: unknown, path: string): ReadonlySet<number> {
  if (!Array.isArray(value) || !value.every((code) => Number.isInteger(code) && code >= 500 && code <= 599)) {
    throw invalidOption(path, `must be an array of 5xx statuses, got ${describe(value)}`, 'e.g. [503]; 429 is governed by retry.on429')
  }
  return new Set(value as number[])
}

export const RETRY_OPTIONS = {
  retries: integer(DEFAULTS.retry.retries, 0, 10),
  minDelayMs: integer(DEFAULTS.retry.minDelayMs, 0),
  maxDelayMs: integer(DEFAULTS.retry.maxDelayMs, 0),
  maxRetryAfterMs: integer(DEFAULTS.retry.maxRetryAfterMs, 0),
  statusCodes: { check: (value, path) => value === undefined ? new Set<number>(DEFAULTS.retry.statusCodes) : checkStatusCodes(value, path) },
  onTimeout: flag(DEFAULTS.retry.onTimeout),
  on429: flag(DEFAULTS.retry.on429)
} satisfies OptionGroup<RetryOptions>

/** The policy when `retry` is left out. */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze(checkGroup(RETRY_OPTIONS, {}, 'retry.'))
/** `retry: false`: one attempt. */
const NO_RETRY: RetryPolicy = Object.freeze({ ...DEFAULT_RETRY, retries: 0 })

export const BREAKER_OPTIONS = {
  failureThreshold: integer(DEFAULTS.breaker.failureThreshold, 1),
  cooldownMs: integer(DEFAULTS.breaker.cooldownMs, 1)
} satisfies OptionGroup<BreakerOptions>

/** The client's options that the plugin also accepts and hands to the client it makes. */
export const UPSTREAM_OPTIONS = {
  baseUrl: { check: (value, path) => checkBaseUrl(value === undefined ? DEFAULTS.client.baseUrl : value, path) },
  apiKey: optional(checkApiKey),
  timeoutMs: integer(DEFAULTS.client.timeoutMs, 1),
  deadlineMs: integer(DEFAULTS.client.deadlineMs, 1),
  retry: {
    check: (value, path): RetryPolicy => {
      if (value === undefined) return DEFAULT_RETRY
      if (value === false) return NO_RETRY
      return Object.freeze(normalizeGroup(RETRY_OPTIONS, value, path))
    }
  },
  breaker: {
    check: (value, path): Required<BreakerOptions> | undefined =>
      value === false ? undefined : Object.freeze(normalizeGroup(BREAKER_OPTIONS, value ?? {}, path))
  },
  dispatcher: optional((value, path) => methodsOption<Dispatcher>(path, value, ['request'], 'pass an undici Dispatcher such as new ProxyAgent(url), or leave it out'))
} satisfies OptionGroup<OsharaUpstreamOptions>

/** Names of `UPSTREAM_OPTIONS`: what the plugin forwards to its own client, and refuses beside `client`. */
export const UPSTREAM_OPTION_NAMES = optionNames(UPSTREAM_OPTIONS)

export const CLIENT_OPTIONS = {
  origin: { check: (value, path) => normalizeOrigin(path, value) },
  ...UPSTREAM_OPTIONS,
  logger: optional((value, path) => methodsOption<OsharaLogger>(path, value, ['info', 'warn'], 'pass a pino-style logger (fastify.log) or leave it out'))
} satisfies OptionGroup<OsharaClientOptions>

// The route.

/** A route hook: a function or an array of them. */
const hook: OptionSpec = {
  callback: true,
  check: (value, path) => {
    if (value !== undefined && !(Array.isArray(value) ? value : [value]).every((item) => typeof item === 'function')) {
      throw invalidOption(path, `must be a hook function or an array of them, got ${describe(value)}`, `pass e.g. ${path.slice(path.lastIndexOf('.') + 1)}: app.authenticate`)
    }
    return value
  }
}

/** `routeOptions.schema`: documentation only. */
export const ROUTE_DOC_OPTIONS = {
  tags: asGiven<OsharaRouteDocs['tags']>(),
  summary: asGiven<OsharaRouteDocs['summary']>(),
  description: asGiven<OsharaRouteDocs['description']>(),
  security: asGiven<OsharaRouteDocs['security']>(),
  operationId: asGiven<OsharaRouteDocs['operationId']>(),
  hide: asGiven<OsharaRouteDocs['hide']>(),
  deprecated: asGiven<OsharaRouteDocs['deprecated']>(),
  externalDocs: asGiven<OsharaRouteDocs['externalDocs']>()
} satisfies OptionGroup<OsharaRouteDocs>

function checkRouteDocs (value: unknown, path: string): OsharaRouteDocs {
  if (!isPlainObject(value)) throw invalidOption(path, `must be an object, got ${describe(value)}`, 'pass documentation fields such as { tags, summary, security }')
  const names = optionNames(ROUTE_DOC_OPTIONS)
  for (const key of Object.keys(value)) {
    if (!(names as string[]).includes(key) && !key.startsWith('x-')) {
      throw invalidOption(`${path}.${key}`, 'is not accepted: the plugin owns the body, params and response schemas', `use only ${names.join(', ')}`)
    }
  }
  return value as OsharaRouteDocs
}

export const ROUTE_OPTIONS = {
  onRequest: hook,
  preParsing: hook,
  preValidation: hook,
  preHandler: hook,
  preSerialization: hook,
  onSend: hook,
  onResponse: hook,
  onError: hook,
  onTimeout: hook,
  onRequestAbort: hook,
  config: asGiven<OsharaRouteOptions['config']>(),
  bodyLimit: integer(DEFAULTS.route.bodyLimit, 1),
  logLevel: asGiven<OsharaRouteOptions['logLevel']>(),
  constraints: asGiven<OsharaRouteOptions['constraints']>(),
  schema: optional(checkRouteDocs)
} satisfies OptionGroup<OsharaRouteOptions>

/** Route options as registered: `bodyLimit` always set. */
export type RouteSettings = OsharaRouteOptions & { bodyLimit: number }

// Session limits.

const STORE_METHODS = ['acquire', 'bind', 'release', 'releaseSession']

function checkStore (value: unknown, path: string): SessionStore {
  if (value === undefined) return new MemorySessionStore()
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
  firstCheckMs: integer(DEFAULTS.tracking.firstCheckMs, 1),
  maxCheckIntervalMs: integer(DEFAULTS.tracking.maxCheckIntervalMs, 1),
  maxTrackMs: integer(DEFAULTS.tracking.maxTrackMs, 1),
  concurrency: integer(DEFAULTS.tracking.concurrency, 1, 100),
  leaseMs: integer(DEFAULTS.tracking.leaseMs, 1),
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

function checkQuotaStore (value: unknown, path: string): QuotaStore {
  if (value === undefined) return new MemoryQuotaStore()
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
  store: { check: checkQuotaStore },
  onStoreError: { check: checkOnStoreError },
  storeTimeoutMs: integer(DEFAULTS.limits.storeTimeoutMs, 1)
} satisfies OptionGroup<OsharaQuotaOptions>

// Observability.

/** `telemetry`: `tracing` loads `@opentelemetry/api` at register (see observability/tracing.ts). */
export const TELEMETRY_OPTIONS = {
  tracing: flag(DEFAULTS.telemetry.tracing)
} satisfies OptionGroup<OsharaTelemetryOptions>

// Agent tools.

/** Oshara's agent worker gives up on a tool after 10 s. */
const TOOL_TIMEOUT_MAX_MS = 10_000
const MIN_SECRET_LENGTH = 16
const MIN_SIGNING_KEY_LENGTH = 32

function checkToolSecret (value: unknown, path: string): string {
  // Never echo the value: it is a secret.
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH || !/^[\x21-\x7e]+$/.test(value)) {
    throw invalidOption(path, `is required: a string of at least ${MIN_SECRET_LENGTH} printable characters without spaces (it is sent as a header)`,
      "generate one, e.g. crypto.randomBytes(32).toString('base64url'), keep it in your environment, and put the same value in the tool's config.headers on the character")
  }
  return value
}

function checkSigningKey (value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length < MIN_SIGNING_KEY_LENGTH) {
    throw invalidOption(path, `must be a string of at least ${MIN_SIGNING_KEY_LENGTH} characters`, "generate one, e.g. crypto.randomBytes(32).toString('base64url'), and keep it in your environment")
  }
  return value
}

function checkPreviousSigningKeys (value: unknown, path: string): readonly string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw invalidOption(path, `must be an array of signing keys, got ${describe(value)}`, 'list the keys being rotated out, e.g. [process.env.OLD_TOOLS_SIGNING_KEY]')
  return value.map((key, index) => checkSigningKey(key, `${path}[${index}]`))
}

function checkToolPrefix (value: unknown, path: string): string {
  if (value === undefined) return DEFAULTS.tools.prefix
  if (typeof value !== 'string' || !/^\/[^?#\s:*]*[^/?#\s:*]$/.test(value)) {
    throw invalidOption(path, `must be an absolute path without a trailing slash or parameters, got ${describe(value)}`, "e.g. prefix: '/api/oshara-tools' (the tool's name is added after it)")
  }
  return value
}

function checkSecretHeader (value: unknown, path: string): string {
  if (value === undefined) return DEFAULTS.tools.secretHeader
  if (typeof value !== 'string' || !/^[A-Za-z0-9-]+$/.test(value)) {
    throw invalidOption(path, `must be a header name, got ${describe(value)}`, "e.g. secretHeader: 'x-oshara-secret' (the header you list in the tool's config.headers)")
  }
  return value.toLowerCase()
}

export const TOOLS_OPTIONS = {
  secret: { check: checkToolSecret },
  signingKey: optional(checkSigningKey),
  previousSigningKeys: { check: checkPreviousSigningKeys },
  prefix: { check: checkToolPrefix },
  secretHeader: { check: checkSecretHeader },
  timeoutMs: integer(DEFAULTS.tools.timeoutMs, 1, TOOL_TIMEOUT_MAX_MS)
} satisfies OptionGroup<OsharaToolsOptions>

export const LIMIT_OPTIONS = {
  concurrency: {
    check: (value, path) => {
      if (value === undefined) throw invalidOption(path, 'is required', 'set the most active sessions per key, e.g. limits: { concurrency: 2 }')
      return integerOption(path, value, 1, 1)
    }
  },
  key: {
    callback: true,
    check: (value, path) => functionOption<NonNullable<OsharaLimitsOptions['key']>>(path, value, '(request) => string, e.g. (request) => request.user.id') ?? DEFAULTS.limits.key
  },
  global: optionalInteger(1),
  store: { check: checkStore },
  holdMs: optionalInteger(1),
  onStoreError: { check: checkOnStoreError },
  storeTimeoutMs: integer(DEFAULTS.limits.storeTimeoutMs, 1)
} satisfies OptionGroup<OsharaLimitsOptions>

// The plugin.

const LANGUAGE_TAG = /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/

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
  if (typeof value !== 'string' || !/^\/[^?#\s]*[^/?#\s]$/.test(value)) {
    throw invalidOption(path, `must be an absolute route path without a trailing slash, got ${describe(value)}`, "e.g. path: '/api/voice-token' (the plugin ignores register prefixes: give the full path)")
  }
  return value
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
  response: userFunction<OsharaVoiceBaseOptions['response']>('(session, request) => ({ ... })'),
  client: optional(checkClient),
  allowedOrigins: { check: checkAllowedOrigins },
  public: flag(DEFAULTS.plugin.public),
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
