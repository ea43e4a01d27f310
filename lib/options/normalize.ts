import type { FastifyRequest } from 'fastify'
import type { TObject } from '@sinclair/typebox'
import type { OsharaClient } from '../client/client.js'
import { type ClientConfig, normalizeClientOptions } from '../client/options.js'
import { invalidOption } from '../errors.js'
import type { IdempotencyStore } from '../idempotency/idempotency-store.js'
import type { TrackingSessionStore } from '../limits/store.js'
import type { BrowserPolicy } from '../route/browser-body.js'
import { buildBodySchema, type ClientField } from '../route/route-schemas.js'
import type { OsharaVoiceOptions } from '../types.js'
import { objectOption } from '../validate.js'
import type { MaybePromise } from '../maybe-promise.js'
import { checkGroup, checkIdempotencyStore, checkTrackingStore, DEFAULTS, type Normalized, PLUGIN_OPTION_NAMES, PLUGIN_OPTIONS, TRACKING_OPTIONS, UPSTREAM_OPTION_NAMES } from './registry.js'

type Given = Normalized<typeof PLUGIN_OPTIONS>

/** `limits` without its key: what the limiter is made of. `store` undefined: the registration's own memory store. */
export type LimitSettings = Omit<NonNullable<Given['limits']>, 'key'>

/** `quota` without its key: what the quota is made of. `store` undefined: a new memory quota store. */
export type QuotaSettings = Omit<NonNullable<Given['quota']>, 'key'>

export interface IdempotencySettings {
  readonly ttlMs: number
  /** `idempotency.store`, else `limits.store` (checked as an idempotency store); undefined: the memory store of `limits`, else a new one. */
  readonly store: IdempotencyStore | undefined
  readonly onStoreError: 'deny' | 'allow'
  readonly storeTimeoutMs: number
}

export interface TrackingSettings extends Omit<NonNullable<Normalized<typeof TRACKING_OPTIONS>>, 'store'> {
  /** `tracking.store`, else `limits.store` (checked as a tracking store); undefined: the memory store of `limits`, else a new one. */
  readonly store: TrackingSessionStore | undefined
  readonly onSessionEnd: Given['onSessionEnd']
}

/**
 * The plugin's options, checked and normalised once at register, never re-read per request: a
 * frozen description that makes no service (no store, limiter, quota or connection pool);
 * `createRegistration` builds them from it. The options used as their checks returned them come
 * straight from `PLUGIN_OPTIONS`; the rest are turned into what the services and the route need.
 */
export interface CheckedOptions extends Omit<Given, 'origin' | 'agent' | 'agents' | 'clientFields' | 'languages' | 'limits' | 'client' | 'tracking' | 'quota' | 'idempotency'> {
  /** The slug when `agent` is a string. */
  readonly agentSlug: string | undefined
  readonly resolveAgent: ((request: FastifyRequest) => MaybePromise<string>) | undefined
  readonly policy: BrowserPolicy
  readonly bodySchema: TObject
  /** The app's own client (`client`), or the checked options of the client the plugin makes and closes. */
  readonly upstream: { readonly shared: OsharaClient } | { readonly own: ClientConfig }
  /** How long a limiter reservation (or an in-flight idempotency mark) lives before its request is done. */
  readonly pendingMs: number
  readonly limits: LimitSettings | undefined
  readonly limitKey: (request: FastifyRequest) => MaybePromise<string>
  readonly quota: QuotaSettings | undefined
  /** The quota key of a request (`quota.key`, else the limiter's key, else `request.ip`). */
  readonly quotaKey: (request: FastifyRequest) => MaybePromise<string>
  /** Idempotent minting, when on. */
  readonly idempotency: IdempotencySettings | undefined
  /** Session tracking, when on. */
  readonly tracking: TrackingSettings | undefined
}

/** A reservation outlives the longest upstream call: the deadline plus this margin. */
const PENDING_MARGIN_MS = 5000
/** A shared client's deadline is not known here. */
const SHARED_CLIENT_PENDING_MS = 60000

function browserPolicy (clientFields: ClientField[], agents: string[] | undefined, languages: ReadonlySet<string> | undefined): BrowserPolicy & { bodySchema: TObject } {
  const bodySchema = buildBodySchema(clientFields, agents !== undefined)
  return {
    fields: new Set(Object.keys(bodySchema.properties)),
    clientFields,
    agents: agents === undefined ? undefined : new Set(agents),
    languages,
    bodySchema
  }
}

/** Replies live in `idempotency.store`, else in `limits.store` (so that instances sharing a limit share replies), else in memory. */
function idempotencySettings ({ idempotency, limits }: Given): IdempotencySettings | undefined {
  if (idempotency === undefined) return undefined
  const store = idempotency.store ?? (limits?.store === undefined ? undefined : checkIdempotencyStore(limits.store, 'limits.store'))
  return {
    store,
    ttlMs: idempotency.ttlMs,
    onStoreError: limits?.onStoreError ?? DEFAULTS.limits.onStoreError,
    storeTimeoutMs: limits?.storeTimeoutMs ?? DEFAULTS.limits.storeTimeoutMs
  }
}

/** The plugin's own client gets every upstream option given, checked here; a shared client takes none. */
function upstreamOf (options: Record<string, unknown>, origin: string | undefined, client: OsharaClient | undefined): CheckedOptions['upstream'] {
  if (client === undefined) {
    const upstream: Record<string, unknown> = { origin }
    for (const name of UPSTREAM_OPTION_NAMES) if (options[name] !== undefined) upstream[name] = options[name]
    return { own: normalizeClientOptions(upstream) }
  }
  const clash = UPSTREAM_OPTION_NAMES.find((name) => options[name] !== undefined)
  if (clash !== undefined) throw invalidOption(clash, 'cannot be combined with client', `set ${clash} on createOsharaClient() instead, or drop client`)
  if (origin !== undefined && origin !== client.origin) {
    throw invalidOption('origin', `differs from the client's origin (${client.origin})`, 'leave origin out: the client sends its own')
  }
  return { shared: client }
}

/**
 * Tracking is on when `apiKey` is set and `limits` or `onSessionEnd` is, unless `tracking: false`.
 * Lookups need the key, so asking for tracking (or `onSessionEnd`) without one fails here.
 */
function trackingSettings (checked: Given, options: Record<string, unknown>): TrackingSettings | undefined {
  const { tracking, onSessionEnd, limits, quota, client } = checked
  const hasApiKey = client === undefined ? options.apiKey !== undefined : client.hasApiKey
  // Quotas of minutes or cost count a session when it ends: they need tracking.
  const quotaBudget = quota?.minutes !== undefined ? 'quota.minutes' : quota?.costUsd !== undefined ? 'quota.costUsd' : undefined
  if (tracking === false) {
    if (onSessionEnd !== undefined) throw invalidOption('onSessionEnd', 'needs session tracking, which tracking: false turns off', 'remove tracking: false, or onSessionEnd')
    if (quotaBudget !== undefined) throw invalidOption(quotaBudget, 'counts when a session ends, which needs session tracking, which tracking: false turns off', 'remove tracking: false, or budget sessions only')
    return undefined
  }
  const needsKey = 'the plugin learns that a call ended from its summary (GET /api/billing/sessions/{id}/), which needs X-API-Key'
  if (!hasApiKey) {
    if (onSessionEnd !== undefined) throw invalidOption('onSessionEnd', `needs apiKey: ${needsKey}`, 'set apiKey (e.g. process.env.OSHARA_API_KEY), or remove onSessionEnd')
    if (quotaBudget !== undefined) throw invalidOption(quotaBudget, `needs apiKey: ${needsKey}`, 'set apiKey (e.g. process.env.OSHARA_API_KEY), or budget sessions only')
    if (tracking !== undefined) throw invalidOption('tracking', `needs apiKey: ${needsKey}`, 'set apiKey, or remove tracking')
    return undefined
  }
  if (tracking === undefined && limits === undefined && onSessionEnd === undefined && quotaBudget === undefined) return undefined
  const { store: trackingStore, ...settings } = tracking ?? checkGroup(TRACKING_OPTIONS, {}, 'tracking.')
  const givenStore = trackingStore ?? limits?.store
  const store = givenStore === undefined ? undefined : checkTrackingStore(givenStore, trackingStore !== undefined ? 'tracking.store' : 'limits.store')
  return { ...settings, store, onSessionEnd }
}

function limitSettings (limits: Given['limits']): LimitSettings | undefined {
  if (limits === undefined) return undefined
  const { key: _key, ...settings } = limits
  return settings
}

function quotaSettings (quota: Given['quota']): QuotaSettings | undefined {
  if (quota === undefined) return undefined
  const { key: _key, ...settings } = quota
  if (settings.sessions === undefined && settings.minutes === undefined && settings.costUsd === undefined) {
    throw invalidOption('quota', 'has no budget', 'set quota.sessions, quota.minutes or quota.costUsd, e.g. { window: \'day\', minutes: 10 }')
  }
  return settings
}

/** Checks the options (every `FST_OSHARA_INVALID_OPTIONS` of `register` is thrown here) and describes the services to build. */
export function normalizePluginOptions (input: OsharaVoiceOptions): CheckedOptions {
  const options = objectOption('options', input, PLUGIN_OPTION_NAMES)
  const checked = checkGroup(PLUGIN_OPTIONS, options, '')
  const { origin, agent, agents, clientFields, languages, limits, client, tracking: _tracking, quota, idempotency: _idempotency, ...given } = checked
  const { bodySchema, ...policy } = browserPolicy(clientFields, agents, languages)
  // In this order, each check's error comes where it always came; the client's own options last.
  const tracking = trackingSettings(checked, options)
  const quotaChecked = quotaSettings(quota)
  const idempotency = idempotencySettings(checked)
  const upstream = upstreamOf(options, origin, client)
  return Object.freeze({
    ...given,
    ...agent,
    policy,
    bodySchema,
    upstream,
    pendingMs: 'own' in upstream ? upstream.own.deadlineMs + PENDING_MARGIN_MS : SHARED_CLIENT_PENDING_MS,
    limits: limitSettings(limits),
    limitKey: limits?.key ?? DEFAULTS.limits.key,
    quota: quotaChecked,
    quotaKey: quota?.key ?? limits?.key ?? DEFAULTS.limits.key,
    idempotency,
    tracking
  })
}
