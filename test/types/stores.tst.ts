import { Redis } from 'ioredis'
import { expect, test } from 'tstyche'
import { MemoryQuotaStore, MemorySessionStore, RedisQuotaStore, RedisSessionStore, type OsharaVoiceOptions } from 'fastify-oshara-voice'
import type {
  AcquireResult,
  ClaimRequest,
  ClaimResult,
  ConsumeRequest,
  ConsumeResult,
  IdempotencyBeginRequest,
  IdempotencyBeginResult,
  IdempotencyStore,
  QuotaBudgets,
  QuotaStore,
  QuotaUsage,
  RedisScriptingClient,
  RescheduleRequest,
  SessionState,
  SessionStore,
  SlotRequest,
  TrackedSession,
  TrackingSessionStore,
  TrackingStore,
  TrackRequest
} from 'fastify-oshara-voice/stores'

test('the stores subpath has the store contracts; the built-in stores implement them', () => {
  expect(new MemorySessionStore()).type.toBeAssignableTo<TrackingSessionStore & IdempotencyStore>()
  expect(new RedisSessionStore({ client: new Redis() })).type.toBeAssignableTo<TrackingSessionStore & IdempotencyStore>()
  expect(new MemoryQuotaStore()).type.toBeAssignableTo<QuotaStore>()
  expect(new RedisQuotaStore({ client: new Redis() })).type.toBeAssignableTo<QuotaStore>()
  expect(new Redis()).type.toBeAssignableTo<RedisScriptingClient>()
  expect<TrackingSessionStore>().type.toBe<SessionStore & TrackingStore>()
  expect<SessionStore['acquire']>().type.toBe<(request: SlotRequest) => Promise<AcquireResult>>()
  expect<TrackingStore['claimDue']>().type.toBe<(request: ClaimRequest) => Promise<ClaimResult>>()
  expect<TrackingStore['track']>().type.toBe<(sessionId: string, request: TrackRequest) => Promise<void>>()
  expect<TrackingStore['reschedule']>().type.toBe<(sessionId: string, owner: string, request: RescheduleRequest) => Promise<boolean>>()
  expect<ClaimResult['sessions']>().type.toBe<TrackedSession[]>()
  expect<SessionStore['sessionState']>().type.toBe<((sessionId: string) => Promise<SessionState | undefined>) | undefined>()
  expect<QuotaStore['consume']>().type.toBe<(request: ConsumeRequest) => Promise<ConsumeResult>>()
  expect<ConsumeRequest['budgets']>().type.toBe<QuotaBudgets>()
  expect<QuotaStore['usage']>().type.toBe<(key: string, window: string) => Promise<QuotaUsage>>()
  expect<IdempotencyStore['beginIdempotent']>().type.toBe<(request: IdempotencyBeginRequest) => Promise<IdempotencyBeginResult>>()
})

test('an app configures stores from the root entry alone', () => {
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({
    origin: 'https://a.example',
    agent: 'a',
    limits: { concurrency: 1, store: new RedisSessionStore({ client: new Redis() }) },
    quota: { window: 'day' as const, sessions: 5, store: new RedisQuotaStore({ client: new Redis() }) }
  })
  expect<NonNullable<OsharaVoiceOptions['limits']>['store']>().type.toBe<SessionStore | undefined>()
})

test('the root entry no longer has the store implementer types', () => {
  expect<import('fastify-oshara-voice').SessionStore>().type.toRaiseError('has no exported member')
  expect<import('fastify-oshara-voice').QuotaStore>().type.toRaiseError('has no exported member')
  expect<import('fastify-oshara-voice').IdempotencyStore>().type.toRaiseError('has no exported member')
  expect<import('fastify-oshara-voice').RedisScriptingClient>().type.toRaiseError('has no exported member')
})
