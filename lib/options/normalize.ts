import type { FastifyRequest } from 'fastify'
import type { TObject } from '@sinclair/typebox'
import { createOsharaClient, type OsharaClient } from '../client/client.js'
import type { OsharaClientOptions } from '../client/options.js'
import { invalidOption } from '../errors.js'
import { SessionLimiter } from '../limits/limiter.js'
import type { BrowserPolicy } from '../route/browser-body.js'
import { buildBodySchema, type ClientField } from '../route/route-schemas.js'
import type { OsharaVoiceOptions } from '../types.js'
import { objectOption } from '../validate.js'
import { MemorySessionStore } from '../limits/memory-store.js'
import { UsageQuota } from '../quota/quota.js'
import type { TrackerConfig } from '../tracking/tracker.js'
import { IdempotentMinting } from '../idempotency/idempotency.js'
import { type ToolsConfig, toolsConfig } from '../tools/tools-config.js'
import { checkGroup, checkIdempotencyStore, checkTrackingStore, DEFAULTS, type Normalized, PLUGIN_OPTION_NAMES, PLUGIN_OPTIONS, TRACKING_OPTIONS, UPSTREAM_OPTION_NAMES } from './registry.js'
import type { MaybePromise } from '../maybe-promise.js'

type Given = Normalized<typeof PLUGIN_OPTIONS>

/**
 * The plugin's options, checked and normalised once at register; never re-read per request. The
 * options used as their checks returned them come straight from `PLUGIN_OPTIONS`; the rest are
 * turned into what the route needs.
 */
export interface PluginConfig extends Omit<Given, 'origin' | 'agent' | 'agents' | 'clientFields' | 'languages' | 'limits' | 'client' | 'tracking' | 'quota' | 'idempotency' | 'tools'> {
  /** The slug when `agent` is a string. */
  readonly agentSlug: string | undefined
  readonly resolveAgent: ((request: FastifyRequest) => MaybePromise<string>) | undefined
  readonly policy: BrowserPolicy
  readonly bodySchema: TObject
  readonly limiter: SessionLimiter | undefined
  readonly limitKey: (request: FastifyRequest) => MaybePromise<string>
  readonly client: OsharaClient
  /** The plugin made the client, so it closes it on `onClose`. */
  readonly ownsClient: boolean
  /** Session tracking, when on. */
  readonly tracking: TrackerConfig | undefined
  readonly quota: UsageQuota | undefined
  /** The quota key of a request (`quota.key`, else the limiter's key, else `request.ip`). */
  readonly quotaKey: (request: FastifyRequest) => MaybePromise<string>
  /** Idempotent minting, when on. */
  readonly idempotency: IdempotentMinting | undefined
  /** Agent tools, when `tools` is set. */
  readonly tools: ToolsConfig | undefined
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

/** How long a reservation (or an in-flight idempotency mark) lives before its request is done. */
function pendingMsOf (options: Record<string, unknown>): number {
  return options.client === undefined ? (options.deadlineMs as number | undefined ?? DEFAULTS.client.deadlineMs) + PENDING_MARGIN_MS : SHARED_CLIENT_PENDING_MS
}

function sessionLimits (limits: Given['limits'], options: Record<string, unknown>): Pick<PluginConfig, 'limiter' | 'limitKey'> {
  if (limits === undefined) return { limiter: undefined, limitKey: DEFAULTS.limits.key }
  const { key, ...settings } = limits
  return { limiter: new SessionLimiter({ ...settings, pendingMs: pendingMsOf(options) }), limitKey: key }
}

/** Replies live in `idempotency.store`, else in `limits.store` (so that instances sharing a limit share replies), else in memory. */
function idempotentMinting ({ idempotency, limits }: Given, options: Record<string, unknown>): IdempotentMinting | undefined {
  if (idempotency === undefined) return undefined
  const store = idempotency.store ?? checkIdempotencyStore(limits?.store ?? new MemorySessionStore(), 'limits.store')
  return new IdempotentMinting({
    store,
    ttlMs: idempotency.ttlMs,
    pendingMs: pendingMsOf(options),
    onStoreError: limits?.onStoreError ?? DEFAULTS.limits.onStoreError,
    storeTimeoutMs: limits?.storeTimeoutMs ?? DEFAULTS.limits.storeTimeoutMs
  })
}

/** The plugin's own client gets every upstream option given; a shared client takes none. */
function sessionClient (options: Record<string, unknown>, origin: string | undefined, client: OsharaClient | undefined): Pick<PluginConfig, 'client' | 'ownsClient'> {
  if (client === undefined) {
    const upstream: Record<string, unknown> = { origin }
    for (const name of UPSTREAM_OPTION_NAMES) if (options[name] !== undefined) upstream[name] = options[name]
    return { client: createOsharaClient(upstream as unknown as OsharaClientOptions), ownsClient: true }
  }
  const clash = UPSTREAM_OPTION_NAMES.find((name) => options[name] !== undefined)
  if (clash !== undefined) throw invalidOption(clash, 'cannot be combined with client', `set ${clash} on createOsharaClient() instead, or drop client`)
  if (origin !== undefined && origin !== client.origin) {
    throw invalidOption('origin', `differs from the client's origin (${client.origin})`, 'leave origin out: the client sends its own')
  }
  return { client, ownsClient: false }
}

/**
 * Tracking is on when `apiKey` is set and `limits` or `onSessionEnd` is, unless `tracking: false`.
 * Lookups need the key, so asking for tracking (or `onSessionEnd`) without one fails here.
 */
function sessionTracking (given: Given, options: Record<string, unknown>): TrackerConfig | undefined {
  const { tracking, onSessionEnd, limits, quota } = given
  const hasApiKey = given.client === undefined ? options.apiKey !== undefined : given.client.hasApiKey
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
  const path = trackingStore !== undefined ? 'tracking.store' : 'limits.store'
  const store = checkTrackingStore(trackingStore ?? limits?.store ?? new MemorySessionStore(), path)
  return { ...settings, store, shared: !(store instanceof MemorySessionStore), onSessionEnd }
}

function usageQuota (quota: Given['quota'], limits: Given['limits']): Pick<PluginConfig, 'quota' | 'quotaKey'> {
  const quotaKey = quota?.key ?? limits?.key ?? DEFAULTS.limits.key
  if (quota === undefined) return { quota: undefined, quotaKey }
  const { key: _key, ...settings } = quota
  if (settings.sessions === undefined && settings.minutes === undefined && settings.costUsd === undefined) {
    throw invalidOption('quota', 'has no budget', 'set quota.sessions, quota.minutes or quota.costUsd, e.g. { window: \'day\', minutes: 10 }')
  }
  return { quota: new UsageQuota(settings), quotaKey }
}

export function normalizePluginOptions (input: OsharaVoiceOptions): PluginConfig {
  const options = objectOption('options', input, PLUGIN_OPTION_NAMES)
  const checked = checkGroup(PLUGIN_OPTIONS, options, '')
  const { origin, agent, agents, clientFields, languages, limits, client, tracking: _tracking, quota, idempotency: _idempotency, tools, ...given } = checked
  const { bodySchema, ...policy } = browserPolicy(clientFields, agents, languages)
  const tracking = sessionTracking(checked, options)
  return Object.freeze({
    ...given,
    ...agent,
    policy,
    bodySchema,
    tracking,
    tools: toolsConfig(tools, tracking?.maxTrackMs ?? DEFAULTS.tracking.maxTrackMs),
    ...usageQuota(quota, limits),
    ...sessionLimits(limits, options),
    idempotency: idempotentMinting(checked, options),
    // Last: every other option is checked before a connection pool is made.
    ...sessionClient(options, origin, client)
  })
}
