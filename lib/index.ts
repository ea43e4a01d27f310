import { osharaVoice } from './plugin.js'

export { osharaVoice }
export default osharaVoice

export { createOsharaClient } from './client/client.js'
export type { CallOptions, OsharaClient } from './client/client.js'
export type { OsharaClientOptions, OsharaLogger } from './client/options.js'
export type { RetryOptions } from './client/retry.js'
export type { BreakerOptions, OsharaBreakerState } from './client/breaker.js'
export type { OsharaSession, SessionOverrides, SessionRequest } from './client/schemas.js'
export type {
  ListFormResponsesFilters,
  ListSessionsFilters,
  OsharaFormResponse,
  OsharaSessionList,
  OsharaSessionSummary,
  OsharaUsageTotals
} from './client/summaries.js'
export {
  OsharaAbortedError,
  OsharaAgentNotFoundError,
  OsharaBadResponseError,
  OsharaCallbackError,
  OsharaError,
  OsharaFieldNotAllowedError,
  OsharaIdempotencyInProgressError,
  OsharaIdempotencyKeyReusedError,
  OsharaInvalidIdempotencyKeyError,
  OsharaInvalidOptionsError,
  OsharaInvalidSessionError,
  OsharaOriginForbiddenError,
  OsharaOriginNotAllowedError,
  OsharaQuotaExceededError,
  OsharaRequestRejectedError,
  OsharaSessionLimitError,
  OsharaSessionNotFoundError,
  OsharaSessionEndedError,
  OsharaTimeoutError,
  OsharaToolArgumentsError,
  OsharaToolFailedError,
  OsharaToolForbiddenError,
  OsharaToolRefusedError,
  OsharaToolTimeoutError,
  OsharaToolUnauthorizedError,
  OsharaUnauthorizedError,
  OsharaUnavailableError,
  OsharaUpstreamError,
  OsharaUpstreamLimitError
} from './errors.js'
export type { OsharaErrorCode, OsharaErrorDetails, OsharaErrorJSON, OsharaOutcome } from './errors.js'
export { MemorySessionStore } from './limits/memory-store.js'
export { MemoryQuotaStore } from './quota/memory-quota-store.js'
export { RedisQuotaStore, type RedisQuotaStoreOptions } from './quota/redis-quota-store.js'
export type { OsharaQuotaUsage } from './quota/quota.js'
export { RedisSessionStore, type RedisSessionStoreOptions } from './limits/redis-store.js'
export type {
  OsharaBreakerMessage,
  OsharaLimitMessage,
  OsharaQuotaMessage,
  OsharaRetryMessage,
  OsharaSessionCreateMessage,
  OsharaSessionEndMessage,
  OsharaSessionLookupMessage,
  OsharaStoreErrorMessage,
  OsharaToolMessage
} from './observability/channels.js'
export type { ClientField } from './route/route-schemas.js'
export type {
  CreateSessionInput,
  CreateSessionOptions,
  OsharaDecorator,
  OsharaIdempotencyOptions,
  OsharaLimitsOptions,
  OsharaQuotaOptions,
  OsharaRouteDocs,
  OsharaRouteOptions,
  OsharaStats,
  OsharaTelemetryOptions,
  OsharaToolContext,
  OsharaToolDefinition,
  OsharaToolOutcome,
  OsharaToolsOptions,
  OsharaTrackingOptions,
  OsharaUpstreamOptions,
  OsharaVoiceBaseOptions,
  OsharaVoiceOptions,
  OsharaVoiceOwnClientOptions,
  OsharaVoiceSharedClientOptions,
  SessionEndContext,
  SessionMetadata
} from './types.js'
export { VERSION } from './version.js'
