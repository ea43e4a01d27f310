import { Cluster } from 'ioredis'
import { expect, test } from 'tstyche'
import {
  MemorySessionStore,
  OsharaError,
  type OsharaErrorCode,
  OsharaIdempotencyInProgressError,
  OsharaIdempotencyKeyReusedError,
  OsharaInvalidIdempotencyKeyError,
  type OsharaDecorator,
  type OsharaSession,
  type OsharaVoiceOptions,
  RedisQuotaStore,
  RedisSessionStore
} from 'fastify-oshara-voice'
import type { IdempotencyBeginResult, IdempotencyStore } from 'fastify-oshara-voice/stores'
import { idempotencyStoreContract, type IdempotencyStoreContractCase } from 'fastify-oshara-voice/testing'

const base = { origin: 'https://a.example', agent: 'a' }

test('the idempotency option', () => {
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({ ...base, idempotency: true })
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({ ...base, idempotency: { ttlMs: 60_000, store: new MemorySessionStore() } })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ ...base, idempotency: { ttl: 1 } })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ ...base, idempotency: { store: {} } })
})

test('createSession takes an idempotencyKey', () => {
  const decorator = {} as OsharaDecorator
  expect(decorator.createSession({}, { key: 'u1', idempotencyKey: 'k-1' })).type.toBe<Promise<OsharaSession>>()
  expect(decorator.createSession({}, { idempotencyKey: 1 })).type.toRaiseError()
})

test('the errors and their codes', () => {
  expect(new OsharaIdempotencyInProgressError('x')).type.toBeAssignableTo<OsharaError>()
  expect(new OsharaIdempotencyKeyReusedError('x')).type.toBeAssignableTo<OsharaError>()
  expect(new OsharaInvalidIdempotencyKeyError('x')).type.toBeAssignableTo<OsharaError>()
  expect<'FST_OSHARA_IDEMPOTENCY_IN_PROGRESS' | 'FST_OSHARA_IDEMPOTENCY_KEY_REUSED' | 'FST_OSHARA_INVALID_IDEMPOTENCY_KEY'>().type.toBeAssignableTo<OsharaErrorCode>()
})

test('the stores, on a Cluster too, and the contract', () => {
  expect(new MemorySessionStore()).type.toBeAssignableTo<IdempotencyStore>()
  expect(new RedisSessionStore({ client: new Cluster([]) })).type.toBeAssignableTo<IdempotencyStore>()
  expect(new RedisQuotaStore({ client: new Cluster([]) })).type.not.toBeAssignableTo<IdempotencyStore>()
  expect<IdempotencyBeginResult>().type.toBeAssignableFrom({ state: 'completed' as const, reply: '{}' })
  expect<IdempotencyBeginResult>().type.not.toBeAssignableFrom({ state: 'completed' as const })
  expect(idempotencyStoreContract({ createStore: () => new MemorySessionStore() })).type.toBe<IdempotencyStoreContractCase[]>()
})
