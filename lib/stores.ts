// `fastify-oshara-voice/stores`: what only a store implementer needs, the interfaces and their
// request and result types. An app passes a store class from the root entry and never names these.
export type {
  AcquireResult,
  ClaimRequest,
  ClaimResult,
  RescheduleRequest,
  SessionState,
  SessionStore,
  SlotRequest,
  TrackedSession,
  TrackingSessionStore,
  TrackingStore,
  TrackRequest
} from './limits/store.js'
export type { RedisScriptingClient } from './limits/redis-client.js'
export type { ConsumeRequest, ConsumeResult, QuotaBudgets, QuotaStore, QuotaUsage } from './quota/quota-store.js'
export type { IdempotencyBeginRequest, IdempotencyBeginResult, IdempotencyStore } from './idempotency/idempotency-store.js'
