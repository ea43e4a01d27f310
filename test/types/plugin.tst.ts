import Fastify, { type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import { expect, test } from 'tstyche'
import osharaVoice, {
  createOsharaClient,
  MemorySessionStore,
  OsharaCallbackError,
  OsharaError,
  type OsharaErrorCode,
  RedisSessionStore,
  OsharaSessionLimitError,
  type OsharaBreakerState,
  type OsharaClient,
  type OsharaDecorator,
  type OsharaRetryMessage,
  type OsharaStats,
  type OsharaOutcome,
  type OsharaSession,
  type OsharaSessionSummary,
  type OsharaVoiceOptions,
  type SessionRequest
} from 'fastify-oshara-voice'
import type { SessionStore } from 'fastify-oshara-voice/stores'
import { createOsharaEmulator, type OsharaEmulator } from 'fastify-oshara-voice/emulator'

test('plugin options', () => {
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({ origin: 'https://a.example', agent: 'support-bot' })
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({
    origin: 'https://a.example',
    agent: async (request: FastifyRequest) => String(request.headers['x-agent']),
    metadata: (request: FastifyRequest) => ({ user_id: request.id }),
    clientFields: ['language', 'greeting'] as Array<'language' | 'greeting'>,
    limits: { concurrency: 2, store: new MemorySessionStore(), onStoreError: 'allow' as const },
    routeOptions: { bodyLimit: 1024, schema: { tags: ['voice'] } }
  })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ agent: 'support-bot' })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', clientFields: ['metadata'] })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', limits: { concurrency: 1, onStoreError: 'ignore' } })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', timeoutMs: '5s' })
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', allowedOrigins: ['https://partner.example'], public: true })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', allowedOrigins: 'https://partner.example' })
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', checkOnReady: false })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', checkOnReady: 'yes' })
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({
    origin: 'https://a.example',
    agent: 'a',
    apiKey: 'sk_x',
    limits: { concurrency: 1, key: (request: FastifyRequest) => request.ip },
    quota: { key: (request: FastifyRequest) => String(request.headers['x-org']), window: 'month' as const, minutes: 600 },
    onSessionEnd: (summary: OsharaSessionSummary, context: { sessionId: string, key: string | undefined, quotaKey: string | undefined }) => {
      expect(summary.transcript?.[0]?.ts).type.toBe<number | null | undefined>()
      expect(summary.id).type.toBe<number | string | undefined>()
    }
  })
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({
    origin: 'https://a.example',
    agent: 'a',
    apiKey: 'sk_x',
    tracking: { firstCheckMs: 1000, maxCheckIntervalMs: 60_000, maxTrackMs: 3_600_000, concurrency: 2, leaseMs: 30_000 },
    onSessionEnd: (summary: OsharaSessionSummary, context: { sessionId: string, key: string | undefined }) => {
      expect(summary.finalized_at).type.toBe<string | null | undefined>()
      expect(summary.estimated_cost_usd).type.toBe<string | null | undefined>()
      expect(context.key).type.toBe<string | undefined>()
    }
  })
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', tracking: false as const })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', tracking: { firstCheckMs: '15s' } })
})

test('register accepts the plugin with its options', () => {
  const app = Fastify()
  expect(app.register(osharaVoice, { origin: 'https://a.example', agent: 'a' })).type.not.toRaiseError()
  expect(app.register(osharaVoice, { origin: 'https://a.example' })).type.toRaiseError()
})

test('hooks are typed', () => {
  expect<NonNullable<OsharaVoiceOptions['beforeSession']>>().type.toBe<(request: FastifyRequest, draft: SessionRequest) => void | Promise<void>>()
  expect<Parameters<NonNullable<OsharaVoiceOptions['onSession']>>[1]>().type.toBe<OsharaSession>()
  expect<Parameters<NonNullable<OsharaVoiceOptions['onSessionError']>>[1]>().type.toBe<Error>()
})

test('the decorator is merged into FastifyInstance', () => {
  const app = Fastify()
  expect(app.oshara).type.toBe<OsharaDecorator>()
  expect(app.oshara.createSession({ metadata: { user_id: 'u1' } }, { key: 'u1' })).type.toBe<Promise<OsharaSession>>()
  expect(app.oshara.releaseSession('sess_1')).type.toBe<Promise<boolean>>()
  expect(app.oshara.client).type.toBe<OsharaClient>()
  expect(app.oshara.createSession({ system_prompt: 1 })).type.toRaiseError()
})

test('observability: stats(), telemetry, the client\'s breaker state, channel messages', () => {
  const app = Fastify()
  expect(app.oshara.stats()).type.toBe<OsharaStats>()
  expect(app.oshara.stats().failed).type.toBe<Record<string, number>>()
  expect(app.oshara.stats().activeSlots).type.toBe<number | undefined>()
  expect<OsharaBreakerState>().type.toBe<'closed' | 'open' | 'half-open'>()
  expect(createOsharaClient({ origin: 'https://a.example' }).breakerState).type.toBe<OsharaBreakerState>()
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', telemetry: { tracing: true } })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', telemetry: { tracing: 'yes' } })
  expect<OsharaRetryMessage['code']>().type.toBe<OsharaErrorCode>()
})

test('sessions and errors', () => {
  const session = {} as OsharaSession
  expect(session.token).type.toBe<string>()
  expect(session.expires_in_seconds).type.toBe<number>()
  const error = new OsharaSessionLimitError('x', { retryAfterMs: 1000 })
  expect(error).type.toBeAssignableTo<OsharaError>()
  expect(error.code).type.toBe<OsharaErrorCode>()
  expect<OsharaErrorCode>().type.not.toBeAssignableFrom('FST_OSHARA_SESION_LIMIT')
  expect<OsharaErrorCode>().type.toBeAssignableFrom('FST_OSHARA_ORIGIN_NOT_ALLOWED')
  expect(new OsharaCallbackError('metadata', new Error('x')).callback).type.toBe<string>()
  expect(error.statusCode).type.toBe<number>()
  expect(error.outcome).type.toBe<OsharaOutcome>()
  expect(error.retryAfterMs).type.toBe<number | undefined>()
  expect(error.attempts).type.toBe<number>()
  expect(error.requestId).type.toBe<string | undefined>()
})

test('client and emulator', () => {
  const client = createOsharaClient({ origin: 'https://a.example', retry: { retries: 1, on429: true }, breaker: false })
  expect(client.createSession({ agent: 'a', language: 'en' })).type.toBe<Promise<OsharaSession>>()
  expect(createOsharaClient({ origin: 'https://a.example', retry: { tries: 1 } })).type.toRaiseError()
  expect(createOsharaEmulator({ characters: [{ slug: 'a', allowed_origins: ['https://a.example'] }] })).type.toBe<Promise<OsharaEmulator>>()
})

test('the store contract', () => {
  expect(new MemorySessionStore()).type.toBeAssignableTo<SessionStore>()
  expect(new RedisSessionStore({ client: new Redis() })).type.toBeAssignableTo<SessionStore>()
  expect(new RedisSessionStore({ client: {} })).type.toRaiseError()
})
