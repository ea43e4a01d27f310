import type { FastifyRequest } from 'fastify'
import type { TObject } from '@sinclair/typebox'
import { createOsharaClient, type OsharaClient } from './client/client.js'
import { CLIENT_OPTION_NAMES, normalizeOrigin } from './client/options.js'
import type { OsharaSession, SessionOverrides, SessionRequest } from './client/schemas.js'
import { invalidOption } from './errors.js'
import { SessionLimiter } from './limits/limiter.js'
import { MemorySessionStore } from './limits/memory-store.js'
import type { SessionStore } from './limits/store.js'
import type { BrowserPolicy } from './route/browser-body.js'
import { buildBodySchema, CLIENT_FIELDS, type ClientField } from './route/route-schemas.js'
import type { OsharaRouteOptions, OsharaVoiceOptions, SessionMetadata } from './types.js'
import { booleanOption, describe, functionOption, integerOption, isPlainObject, objectOption, refuseUnsetFunctions, stringListOption } from './validate.js'

type MaybePromise<T> = T | Promise<T>

/** The plugin's options, checked and normalised once at register; never re-read per request. */
export interface PluginConfig {
  readonly path: string
  readonly route: boolean
  readonly routeOptions: OsharaRouteOptions
  readonly decorator: string | false
  /** The slug when `agent` is a string. */
  readonly agentSlug: string | undefined
  readonly resolveAgent: ((request: FastifyRequest) => MaybePromise<string>) | undefined
  readonly metadata: ((request: FastifyRequest) => MaybePromise<SessionMetadata>) | undefined
  readonly session: ((request: FastifyRequest) => MaybePromise<SessionOverrides>) | undefined
  readonly beforeSession: ((request: FastifyRequest, draft: SessionRequest) => MaybePromise<void>) | undefined
  readonly onSession: ((request: FastifyRequest, session: OsharaSession) => MaybePromise<void>) | undefined
  readonly onSessionError: ((request: FastifyRequest, error: Error) => MaybePromise<void>) | undefined
  readonly response: ((session: OsharaSession, request: FastifyRequest) => Record<string, unknown>) | undefined
  /** Origins of other sites whose pages may call the routes. */
  readonly allowedOrigins: ReadonlySet<string>
  /** The route is open on purpose: no startup warning about a missing auth hook. */
  readonly public: boolean
  readonly policy: BrowserPolicy
  readonly bodySchema: TObject
  readonly limiter: SessionLimiter | undefined
  readonly limitKey: (request: FastifyRequest) => MaybePromise<string>
  readonly client: OsharaClient
  /** The plugin made the client, so it closes it on `onClose`. */
  readonly ownsClient: boolean
}

const PLUGIN_OPTION_NAMES = [
  ...CLIENT_OPTION_NAMES.filter((name) => name !== 'logger'),
  'agent', 'agents', 'metadata', 'session', 'clientFields', 'languages', 'path', 'route', 'routeOptions',
  'decorator', 'beforeSession', 'onSession', 'onSessionError', 'limits', 'response', 'client', 'allowedOrigins', 'public'
]
const FUNCTION_OPTION_NAMES = ['metadata', 'session', 'beforeSession', 'onSession', 'onSessionError', 'response']
const UPSTREAM_OPTION_NAMES = ['baseUrl', 'apiKey', 'timeoutMs', 'deadlineMs', 'retry', 'breaker', 'dispatcher']
const ROUTE_HOOK_NAMES = [
  'onRequest', 'preParsing', 'preValidation', 'preHandler', 'preSerialization', 'onSend', 'onResponse', 'onError',
  'onTimeout', 'onRequestAbort'
]
const ROUTE_OPTION_NAMES = [...ROUTE_HOOK_NAMES, 'config', 'bodyLimit', 'logLevel', 'constraints', 'schema']
const SCHEMA_DOC_NAMES = ['tags', 'summary', 'description', 'security', 'operationId', 'hide', 'deprecated', 'externalDocs']
const LIMIT_OPTION_NAMES = ['concurrency', 'key', 'global', 'store', 'holdMs', 'onStoreError', 'storeTimeoutMs']
const STORE_METHODS = ['acquire', 'bind', 'release', 'releaseSession']
const LANGUAGE_TAG = /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/
const DEFAULT_DEADLINE_MS = 15000

function byIp (request: FastifyRequest): string {
  return request.ip
}

function normalizeAgent (value: unknown): Pick<PluginConfig, 'agentSlug' | 'resolveAgent'> {
  if (typeof value === 'string' && value !== '') return { agentSlug: value, resolveAgent: undefined }
  if (typeof value === 'function') return { agentSlug: undefined, resolveAgent: value as PluginConfig['resolveAgent'] }
  throw invalidOption('agent', `is required and must be a slug or a function, got ${describe(value)}`, "pass the character slug, e.g. agent: 'support-bot', or (request) => slug")
}

function normalizePolicy (options: Record<string, unknown>): BrowserPolicy & { bodySchema: TObject } {
  let clientFields: ClientField[] = ['language']
  if (options.clientFields !== undefined) {
    const value = options.clientFields
    if (!Array.isArray(value) || !value.every((field) => (CLIENT_FIELDS as readonly unknown[]).includes(field))) {
      throw invalidOption('clientFields', `must be an array of ${CLIENT_FIELDS.map((f) => `'${f}'`).join(', ')}, got ${describe(value)}`,
        "list only fields the browser may set, e.g. ['language']; metadata and mcp_headers are server-only (use the metadata and session options)")
    }
    clientFields = [...new Set(value as ClientField[])]
  }
  const agents = stringListOption('agents', options.agents, "list the slugs the browser may pick, e.g. ['support-bot', 'sales-bot']")
  const languages = stringListOption('languages', options.languages, "list BCP-47 tags, e.g. ['en', 'fr-CA']")
  const badTag = languages?.find((tag) => !LANGUAGE_TAG.test(tag) || tag.length > 35)
  if (badTag !== undefined) throw invalidOption('languages', `holds ${describe(badTag)}, which is not a BCP-47 tag`, "use tags such as 'en' or 'pt-BR'")
  const bodySchema = buildBodySchema(clientFields, agents !== undefined)
  return {
    fields: new Set(Object.keys(bodySchema.properties)),
    clientFields,
    agents: agents === undefined ? undefined : new Set(agents),
    languages: languages === undefined ? undefined : new Set(languages.map((tag) => tag.toLowerCase())),
    bodySchema
  }
}

function normalizePath (value: unknown): string {
  if (value === undefined) return '/voice-token'
  if (typeof value !== 'string' || !/^\/[^?#\s]*[^/?#\s]$/.test(value)) {
    throw invalidOption('path', `must be an absolute route path without a trailing slash, got ${describe(value)}`, "e.g. path: '/api/voice-token' (the plugin ignores register prefixes: give the full path)")
  }
  return value
}

function normalizeAllowedOrigins (value: unknown): ReadonlySet<string> {
  if (value === undefined) return new Set()
  const fix = "list the origins of your frontends on other sites, e.g. ['https://app.example.com']"
  if (!Array.isArray(value)) throw invalidOption('allowedOrigins', `must be an array of origins, got ${describe(value)}`, fix)
  return new Set(value.map((origin, index) => normalizeOrigin(`allowedOrigins[${index}]`, origin)))
}

function normalizeDecorator (value: unknown): string | false {
  if (value === undefined) return 'oshara'
  if (value === false || (typeof value === 'string' && /^[A-Za-z_$][\w$]*$/.test(value))) return value
  throw invalidOption('decorator', `must be an identifier or false, got ${describe(value)}`, "e.g. decorator: 'osharaSales', or false for none")
}

function normalizeRouteOptions (value: unknown): OsharaRouteOptions {
  if (value === undefined) return {}
  const routeOptions = objectOption('routeOptions', value, ROUTE_OPTION_NAMES)
  refuseUnsetFunctions('routeOptions.', routeOptions, ROUTE_HOOK_NAMES)
  for (const hook of ROUTE_HOOK_NAMES) {
    const given = routeOptions[hook]
    if (given !== undefined && !(Array.isArray(given) ? given : [given]).every((item) => typeof item === 'function')) {
      throw invalidOption(`routeOptions.${hook}`, `must be a hook function or an array of them, got ${describe(given)}`, `pass e.g. ${hook}: app.authenticate`)
    }
  }
  if (routeOptions.schema !== undefined) {
    const schema = routeOptions.schema
    if (!isPlainObject(schema)) throw invalidOption('routeOptions.schema', `must be an object, got ${describe(schema)}`, 'pass documentation fields such as { tags, summary, security }')
    for (const key of Object.keys(schema)) {
      if (!SCHEMA_DOC_NAMES.includes(key) && !key.startsWith('x-')) {
        throw invalidOption(`routeOptions.schema.${key}`, 'is not accepted: the plugin owns the body, params and response schemas', `use only ${SCHEMA_DOC_NAMES.join(', ')}`)
      }
    }
  }
  return routeOptions as OsharaRouteOptions
}

function normalizeStore (value: unknown): SessionStore {
  if (value === undefined) return new MemorySessionStore()
  if (value === null || typeof value !== 'object' || !STORE_METHODS.every((method) => typeof (value as Record<string, unknown>)[method] === 'function')) {
    throw invalidOption('limits.store', `must implement ${STORE_METHODS.join(', ')}, got ${describe(value)}`, 'pass new MemorySessionStore(), new RedisSessionStore({ client }), or your own SessionStore')
  }
  return value as SessionStore
}

function normalizeLimits (value: unknown, pendingMs: number): Pick<PluginConfig, 'limiter' | 'limitKey'> {
  if (value === undefined) return { limiter: undefined, limitKey: byIp }
  const limits = objectOption('limits', value, LIMIT_OPTION_NAMES)
  refuseUnsetFunctions('limits.', limits, ['key'])
  if (limits.concurrency === undefined) throw invalidOption('limits.concurrency', 'is required', 'set the most active sessions per key, e.g. limits: { concurrency: 2 }')
  const onStoreError = limits.onStoreError ?? 'deny'
  if (onStoreError !== 'deny' && onStoreError !== 'allow') {
    throw invalidOption('limits.onStoreError', `must be 'deny' or 'allow', got ${describe(onStoreError)}`, "'deny' answers 503 while the store is down; 'allow' serves without limits and logs a warning")
  }
  const limiter = new SessionLimiter({
    concurrency: integerOption('limits.concurrency', limits.concurrency, 1, 1),
    global: limits.global === undefined ? undefined : integerOption('limits.global', limits.global, 1, 1),
    holdMs: limits.holdMs === undefined ? undefined : integerOption('limits.holdMs', limits.holdMs, 1, 1),
    storeTimeoutMs: integerOption('limits.storeTimeoutMs', limits.storeTimeoutMs, 1000, 1),
    onStoreError,
    pendingMs,
    store: normalizeStore(limits.store)
  })
  const key = functionOption<PluginConfig['limitKey']>('limits.key', limits.key, '(request) => string, e.g. (request) => request.user.id')
  return { limiter, limitKey: key ?? byIp }
}

function normalizeClient (options: Record<string, unknown>): Pick<PluginConfig, 'client' | 'ownsClient'> {
  if (options.client === undefined) {
    const upstream: Record<string, unknown> = { origin: options.origin }
    for (const name of UPSTREAM_OPTION_NAMES) if (options[name] !== undefined) upstream[name] = options[name]
    return { client: createOsharaClient(upstream as never), ownsClient: true }
  }
  const client = options.client as Partial<OsharaClient> | null
  if (client === null || typeof client !== 'object' || typeof client.createSession !== 'function' || typeof client.origin !== 'string') {
    throw invalidOption('client', `must be an OsharaClient, got ${describe(client)}`, 'pass createOsharaClient({ origin, ... }), or leave it out')
  }
  const clash = UPSTREAM_OPTION_NAMES.find((name) => options[name] !== undefined)
  if (clash !== undefined) throw invalidOption(clash, 'cannot be combined with client', `set ${clash} on createOsharaClient() instead, or drop client`)
  if (options.origin !== undefined && normalizeOrigin('origin', options.origin) !== client.origin) {
    throw invalidOption('origin', `differs from the client's origin (${client.origin})`, 'leave origin out: the client sends its own')
  }
  return { client: client as OsharaClient, ownsClient: false }
}

export function normalizePluginOptions (input: OsharaVoiceOptions): PluginConfig {
  const options = objectOption('options', input, PLUGIN_OPTION_NAMES)
  refuseUnsetFunctions('', options, FUNCTION_OPTION_NAMES)
  const route = options.route ?? true
  if (typeof route !== 'boolean') throw invalidOption('route', `must be a boolean, got ${describe(route)}`, 'set route: false for decorator-only use')
  const { bodySchema, ...policy } = normalizePolicy(options)
  // A reservation outlives the longest upstream call; a shared client's deadline is not known here.
  const pendingMs = options.client === undefined ? (options.deadlineMs as number | undefined ?? DEFAULT_DEADLINE_MS) + 5000 : 60000
  const config: PluginConfig = {
    path: normalizePath(options.path),
    route,
    routeOptions: normalizeRouteOptions(options.routeOptions),
    decorator: normalizeDecorator(options.decorator),
    ...normalizeAgent(options.agent),
    metadata: functionOption('metadata', options.metadata, '(request) => ({ user_id: request.user.id, ... })'),
    session: functionOption('session', options.session, '(request) => ({ language, greeting, ... })'),
    beforeSession: functionOption('beforeSession', options.beforeSession, '(request, draft) => { ... }'),
    onSession: functionOption('onSession', options.onSession, '(request, session) => { ... }'),
    onSessionError: functionOption('onSessionError', options.onSessionError, '(request, error) => { ... }'),
    response: functionOption('response', options.response, '(session, request) => ({ ... })'),
    allowedOrigins: normalizeAllowedOrigins(options.allowedOrigins),
    public: booleanOption('public', options.public, false),
    policy,
    bodySchema,
    ...normalizeLimits(options.limits, pendingMs),
    // Last: every other option is checked before a connection pool is made.
    ...normalizeClient(options)
  }
  return Object.freeze(config)
}
