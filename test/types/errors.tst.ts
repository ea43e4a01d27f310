import { expect, test } from 'tstyche'
import {
  OsharaCallbackError,
  OsharaError,
  type OsharaErrorCode,
  OsharaFieldNotAllowedError,
  type OsharaOutcome,
  OsharaSessionLimitError,
  OsharaUpstreamLimitError
} from 'fastify-oshara-voice'

test('error fields are read-only', () => {
  const error = new OsharaUpstreamLimitError('Too many active voice sessions.', { retryAfterMs: 5000 })
  expect(error.code).type.toBe<OsharaErrorCode>()
  expect(error.outcome).type.toBe<OsharaOutcome>()
  expect(error.retryAfterMs).type.toBe<number | undefined>()
  // @ts-expect-error read-only
  error.code = 'FST_OSHARA_ERROR'
  // @ts-expect-error read-only
  error.statusCode = 500
  // @ts-expect-error read-only
  error.upstreamStatus = 429
  // @ts-expect-error read-only
  error.outcome = 'unknown'
  // @ts-expect-error read-only
  error.retryAfterMs = 1000
  // @ts-expect-error read-only
  error.attempts = 2
  // @ts-expect-error read-only
  error.requestId = 'r'
  // @ts-expect-error read-only
  error.detail = 'd'
  // @ts-expect-error read-only
  error.fix = 'f'
})

test('the fields of the subclasses are read-only', () => {
  const limit = new OsharaSessionLimitError('full', { scope: 'key' })
  expect(limit.scope).type.toBe<'key' | 'global' | undefined>()
  // @ts-expect-error read-only
  limit.scope = 'global'
  // @ts-expect-error read-only
  new OsharaFieldNotAllowedError('agent', 'no').field = 'language'
  // @ts-expect-error read-only
  new OsharaCallbackError('metadata', undefined).callback = 'session'
})

test('the constructors stay as they were', () => {
  expect(new OsharaError('x')).type.toBeAssignableTo<Error>()
  expect(new OsharaError('x', { outcome: 'unknown', retryAfterMs: 1, attempts: 1, requestId: 'r', detail: 'd', fix: 'f', cause: new Error('c') })).type.toBe<OsharaError>()
  expect(new OsharaSessionLimitError('full')).type.toBe<OsharaSessionLimitError>()
  expect(OsharaSessionLimitError).type.not.toBeConstructableWith('full', { scope: 'region' })
})
