import type { FastifyBaseLogger } from 'fastify'
import type { OsharaSessionSummary } from './client/summaries.js'
import type { BindTracking } from './limits/limiter.js'
import { SessionStats } from './observability/stats.js'
import type { SessionTracing } from './observability/tracing.js'
import type { PluginConfig } from './options/normalize.js'
import type { ToolSigner } from './tools/signature.js'
import { SessionTracker } from './tracking/tracker.js'

/**
 * Everything one `register` call owns, in one object: the checked options and the services built
 * from them. The routes, the decorator, minting and the tool routes all read this one context.
 */
export interface Registration extends PluginConfig {
  /** Follows minted sessions to their end, when tracking is on. */
  readonly tracker: SessionTracker | undefined
  /** What the limiter's `bind` needs from tracking, made once. */
  readonly bindTracking: BindTracking | undefined
  /** The counters of `stats()`. */
  readonly stats: SessionStats
  /** The OpenTelemetry spans, when `telemetry.tracing` is on. */
  readonly tracing: SessionTracing | undefined
  /** Signs every session's metadata, with `tools`. */
  readonly signer: ToolSigner | undefined
}

/** Builds the services of one registration over its checked options. */
export function createRegistration (config: PluginConfig, tracing: SessionTracing | undefined, log: FastifyBaseLogger): Registration {
  return Object.freeze({
    ...config,
    ...tracking(config, log),
    stats: new SessionStats(),
    tracing,
    signer: config.tools?.signer
  })
}

/** The session tracker, when tracking is on. */
function tracking (config: PluginConfig, log: FastifyBaseLogger): Pick<Registration, 'tracker' | 'bindTracking'> {
  if (config.tracking === undefined) return { tracker: undefined, bindTracking: undefined }
  const { quota } = config
  // An ended session's minutes and cost count against the quota key it was minted under.
  const onEnded = quota?.needsTracking === true
    ? async (quotaKey: string | undefined, summary: OsharaSessionSummary) => { if (quotaKey !== undefined) await quota.record(quotaKey, summary, log) }
    : undefined
  return {
    tracker: new SessionTracker(config.tracking, config.client, log, onEnded),
    bindTracking: Object.freeze({ firstCheckMs: config.tracking.firstCheckMs, maxTrackMs: config.tracking.maxTrackMs })
  }
}
