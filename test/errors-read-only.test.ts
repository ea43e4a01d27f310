import t, { type Test } from 'tap'
import { types } from 'node:util'
import * as api from '../lib/index.js'
import { createOsharaClient } from '../lib/client/client.js'
import { copyWith, failure, OsharaCallbackError, OsharaError, OsharaFieldNotAllowedError, OsharaSessionLimitError } from '../lib/errors.js'
import { failure as rejection, ORIGIN, startEmulator } from './helpers/emulator.js'

// An error's fields are decided when it is built: assigning one throws (test files are ES
// modules, so strict mode), and the value stays. A change is a copy (`copyWith`).

const FIELDS = ['code', 'statusCode', 'upstreamStatus', 'outcome', 'retryAfterMs', 'attempts', 'requestId', 'detail', 'fix'] as const

function assignThrows (t: Test, error: object, field: string, value: unknown): void {
  const before = (error as Record<string, unknown>)[field]
  t.throws(() => { (error as Record<string, unknown>)[field] = value }, TypeError, `assigning ${field} throws`)
  t.equal((error as Record<string, unknown>)[field], before, `${field} is unchanged`)
}

t.test('assigning any field of any exported error class throws and changes nothing', async (t) => {
  const classes = Object.values(api).filter((value): value is typeof OsharaError =>
    typeof value === 'function' && (value === OsharaError || value.prototype instanceof OsharaError))
  for (const ErrorClass of classes) {
    const error = ErrorClass === OsharaCallbackError
      ? new OsharaCallbackError('metadata', new Error('boom'))
      : new ErrorClass('x', { upstreamStatus: 503, retryAfterMs: 1000, attempts: 2, requestId: 'r1', detail: 'd', fix: 'f' })
    for (const field of FIELDS) assignThrows(t, error, field, 'changed')
    t.throws(() => { delete (error as unknown as Partial<Record<string, unknown>>).outcome }, TypeError, `${ErrorClass.name}: a field cannot be deleted`)
  }
})

t.test('the fields of the subclasses are read-only too', async (t) => {
  assignThrows(t, new OsharaFieldNotAllowedError('agent', 'no'), 'field', 'other')
  assignThrows(t, new OsharaCallbackError('metadata', undefined), 'callback', 'session')
  const limit = new OsharaSessionLimitError('full', { scope: 'key', retryAfterMs: 2000 })
  t.equal(limit.scope, 'key')
  assignThrows(t, limit, 'scope', 'global')
  t.equal(new OsharaSessionLimitError('full').scope, undefined, 'scope is undefined for one thrown by the app')
})

t.test('read-only fields are still printed: enumerable own properties, and the error is a native one', async (t) => {
  const error = failure('FST_OSHARA_UNAVAILABLE', 'store-down', { cause: new Error('down') })
  t.ok(types.isNativeError(error))
  t.same(Object.keys(error), ['name', 'code', 'statusCode', 'upstreamStatus', 'outcome', 'retryAfterMs', 'attempts', 'requestId', 'detail', 'fix'])
  t.match(JSON.parse(JSON.stringify(error)), { code: 'FST_OSHARA_UNAVAILABLE', statusCode: 503, retryAfterMs: 5000 })
})

t.test('copyWith makes a copy of the same class, message, stack and cause, and leaves the original as it was', async (t) => {
  const cause = new Error('connect ECONNREFUSED')
  const original = failure('FST_OSHARA_SESSION_LIMIT', 'reached', { scope: 'global', waitMs: 3000, detail: 'global limit reached', cause })
  const copy = copyWith(original, { attempts: 3, requestId: 'req-9' })
  t.not(copy, original)
  t.ok(copy instanceof OsharaSessionLimitError)
  t.ok(types.isNativeError(copy), 'still a native error')
  t.match(copy, { code: 'FST_OSHARA_SESSION_LIMIT', scope: 'global', retryAfterMs: 3000, attempts: 3, requestId: 'req-9', detail: 'global limit reached' })
  t.equal(copy.message, original.message)
  t.equal(copy.stack, original.stack, 'the stack is where the failure was made')
  t.equal(copy.cause, cause)
  t.match(original, { attempts: 0, requestId: undefined }, 'the original is unchanged')
  assignThrows(t, copy, 'attempts', 4)
  assignThrows(t, copy, 'scope', 'key')
  const unknown = copyWith(original, { outcome: 'unknown' })
  t.equal(unknown.outcome, 'unknown', 'the outcome of a call can be set on its copy')
  t.equal(original.outcome, 'not_created')
  assignThrows(t, unknown, 'outcome', 'not_created')
})

t.test('an error the client throws after its attempts is read-only, with its attempts and request id', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 }, breaker: false })
  t.teardown(() => client.close())
  emulator.fault({ status: 503 }, 2)
  const error = await rejection(client.createSession({ agent: 'support-bot' }, { requestId: 'req-1' }))
  t.match(error, { code: 'FST_OSHARA_UPSTREAM_ERROR', attempts: 2, requestId: 'req-1', outcome: 'not_created' })
  assignThrows(t, error, 'attempts', 0)
  assignThrows(t, error, 'requestId', 'other')
})
