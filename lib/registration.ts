import type { FastifyBaseLogger } from 'fastify'
import { clientOf, type OsharaClient } from './client/client.js'
import type { OsharaSessionSummary } from './client/summaries.js'
import { IdempotentMinting } from './idempotency/idempotency.js'
import { type BindTracking, SessionLimiter } from './limits/limiter.js'
import { MemorySessionStore } from './limits/memory-store.js'
import { SessionStats } from './observability/stats.js'
import type { SessionTracing } from './observability/tracing.js'
import type { CheckedOptions } from './options/normalize.js'
import { DEFAULTS } from './options/registry.js'
import { MemoryQuotaStore } from './quota/memory-quota-store.js'
import { UsageQuota } from './quota/quota.js'
import type { ToolSigner } from './tools/signature.js'
import { type ToolsConfig, toolsConfig } from './tools/tools-config.js'
import { SessionTracker, type TrackerConfig } from './tracking/tracker.js'

/**
 * Everything one `register` call owns, in one object: the checked options and the services built
 * from them. The routes, the decorator, minting and the tool routes all read this one context.
 */
export interface Registration extends Omit<CheckedOptions, 'upstream' | 'pendingMs' | 'limits' | 'quota' | 'idempotency' | 'tracking' | 'tools'> {
  readonly client: OsharaClient
  /** The plugin made the client, so it closes it on `onClose`. */
  readonly ownsClient: boolean
  readonly limiter: SessionLimiter | undefined
  readonly quota: UsageQuota | undefined
  /** Idempotent minting, when on. */
  readonly idempotency: IdempotentMinting | undefined
  /** Session tracking's settings and store, when on. */
  readonly tracking: TrackerConfig | undefined
  /** Follows minted sessions to their end, when tracking is on. */
  readonly tracker: SessionTracker | undefined
  /** What the limiter's `bind` needs from tracking, made once. */
  readonly bindTracking: BindTracking | undefined
  /** Agent tools, when `tools` is set. */
  readonly tools: ToolsConfig | undefined
  /** Signs every session's metadata, with `tools`. */
  readonly signer: ToolSigner | undefined
  /** The counters of `stats()`. */
  readonly stats: SessionStats
  /** The OpenTelemetry spans, when `telemetry.tracing` is on. */
  readonly tracing: SessionTracing | undefined
}

/**
 * Builds the services of one registration from its checked options (nothing here throws an option
 * error: `normalizePluginOptions` has checked them all). The connection pool is made last.
 */
export function createRegistration (checked: CheckedOptions, tracing: SessionTracing | undefined, log: FastifyBaseLogger): Registration {
  const { upstream, pendingMs, limits, quota, idempotency, tracking, tools, ...settings } = checked
  const limiter = limits === undefined ? undefined : new SessionLimiter({ ...limits, store: limits.store ?? new MemorySessionStore(), pendingMs })
  // Without a store of their own, tracked sessions and replies live beside the limiter's slots (a
  // store given as limits.store is already theirs in the checked options).
  const limiterMemory = limiter?.config.store instanceof MemorySessionStore ? limiter.config.store : undefined
  const quotaService = quota === undefined ? undefined : new UsageQuota({ ...quota, store: quota.store ?? new MemoryQuotaStore() })
  const replies = idempotency === undefined
    ? undefined
    : new IdempotentMinting({ ...idempotency, store: idempotency.store ?? limiterMemory ?? new MemorySessionStore(), pendingMs })
  const trackerConfig = trackingConfig(tracking, limiterMemory)
  const toolsChecked = toolsConfig(tools, trackerConfig?.maxTrackMs ?? DEFAULTS.tracking.maxTrackMs)
  const client = 'shared' in upstream ? upstream.shared : clientOf(upstream.own)
  return Object.freeze({
    ...settings,
    client,
    ownsClient: !('shared' in upstream),
    limiter,
    quota: quotaService,
    idempotency: replies,
    tracking: trackerConfig,
    ...tracker(trackerConfig, client, quotaService, log),
    tools: toolsChecked,
    signer: toolsChecked?.signer,
    stats: new SessionStats(),
    tracing
  })
}

/** Tracked sessions live in `tracking.store`, else `limits.store`, else the limiter's memory store, else a memory store of their own. */
function trackingConfig (tracking: CheckedOptions['tracking'], limiterMemory: MemorySessionStore | undefined): TrackerConfig | undefined {
  if (tracking === undefined) return undefined
  const store = tracking.store ?? limiterMemory ?? new MemorySessionStore()
  return Object.freeze({ ...tracking, store, shared: !(store instanceof MemorySessionStore) })
}

/** The session tracker, when tracking is on. */
function tracker (config: TrackerConfig | undefined, client: OsharaClient, quota: UsageQuota | undefined, log: FastifyBaseLogger): Pick<Registration, 'tracker' | 'bindTracking'> {
  if (config === undefined) return { tracker: undefined, bindTracking: undefined }
  // An ended session's minutes and cost count against the quota key it was minted under.
  const onEnded = quota?.needsTracking === true
    ? async (quotaKey: string | undefined, summary: OsharaSessionSummary) => { if (quotaKey !== undefined) await quota.record(quotaKey, summary, log) }
    : undefined
  return {
    tracker: new SessionTracker(config, client, log, onEnded),
    bindTracking: Object.freeze({ firstCheckMs: config.firstCheckMs, maxTrackMs: config.maxTrackMs })
  }
}
