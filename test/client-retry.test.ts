import t, { type Test } from 'tap'
import { createOsharaClient } from '../lib/client/client.js'
import type { OsharaClientOptions } from '../lib/client/options.js'
import type { RetryOptions } from '../lib/client/retry.js'
import type { EmulatorFault } from '../lib/emulator.js'
import { closedPort, failure, ORIGIN, recordingLogger, sessionRequests, startEmulator } from './helpers/emulator.js'

// The retry policy: what is retried, how often, how long we wait, and what stops it.

const body = { agent: 'support-bot' }
const fast = { minDelayMs: 1, maxDelayMs: 5 }

async function setup (t: Test, options: Partial<OsharaClientOptions> = {}) {
  const emulator = await startEmulator(t)
  const logger = recordingLogger()
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, breaker: false, logger, retry: fast, ...options })
  t.teardown(() => client.close())
  return { emulator, client, logger }
}

t.test('503, 503, 200 succeeds in 3 attempts with one x-request-id', async (t) => {
  const { emulator, client, logger } = await setup(t)
  emulator.fault({ status: 503 }, 2)
  const session = await client.createSession(body)
  t.ok(session.session_id)
  const requests = sessionRequests(emulator)
  t.equal(requests.length, 3)
  const ids = new Set(requests.map((request) => request.headers['x-request-id']))
  t.equal(ids.size, 1, 'the same id on every attempt')
  t.same(logger.lines.map((line) => line.level), ['warn', 'warn', 'info'])
  t.match(logger.lines[0]?.object, { attempt: 1, code: 'FST_OSHARA_UPSTREAM_ERROR', upstreamStatus: 503, requestId: requests[0]?.headers['x-request-id'] })
  t.match(logger.lines[2]?.object, { session_id: session.session_id, agent: 'support-bot', attempts: 3, durationMs: Number })
})

t.test('retries run out: 503 x3 fails with attempts 3 and outcome not_created', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 503 }, 5)
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_ERROR', attempts: 3, outcome: 'not_created' })
  t.equal(sessionRequests(emulator).length, 3)
})

t.test('connection refused is retried (nothing reached the server)', async (t) => {
  const logger = recordingLogger()
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: `http://127.0.0.1:${await closedPort()}`, logger, retry: fast, breaker: false })
  t.teardown(() => client.close())
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UNAVAILABLE', attempts: 3, outcome: 'not_created' })
  t.equal(logger.lines.filter((line) => line.level === 'warn').length, 2)
})

for (const [name, fault] of [
  ['500', { status: 500 }],
  ['502', { status: 502 }],
  ['504', { status: 504 }],
  ['a reset after the request was sent', { reset: true }],
  ['a timeout', { delayMs: 400 }]
] as const) {
  t.test(`${name} is tried once and carries outcome unknown (duplicate sessions)`, async (t) => {
    const { emulator, client } = await setup(t, { timeoutMs: 100 })
    emulator.fault(fault, 3)
    t.match(await failure(client.createSession(body)), { attempts: 1, outcome: 'unknown' })
    t.equal(sessionRequests(emulator).length, 1)
  })
}

t.test('onTimeout opts in to retrying timeouts and resets', async (t) => {
  const { emulator, client } = await setup(t, { timeoutMs: 100, retry: { ...fast, onTimeout: true } })
  emulator.fault({ delayMs: 400 })
  emulator.fault({ reset: true })
  t.ok(await client.createSession(body))
  t.equal(sessionRequests(emulator).length, 3)
})

t.test('statusCodes opts in to retrying 500', async (t) => {
  const { emulator, client } = await setup(t, { retry: { ...fast, statusCodes: [500, 503] } })
  emulator.fault({ status: 500 })
  t.ok(await client.createSession(body))
  t.equal(sessionRequests(emulator).length, 2)
})

const mayHaveCreatedFirst: Array<[name: string, retry: RetryOptions, first: EmulatorFault, last: EmulatorFault, code: string, attempts: number]> = [
  ['onTimeout: a timeout, then 503, 503', { onTimeout: true }, { delayMs: 400 }, { status: 503 }, 'FST_OSHARA_UPSTREAM_ERROR', 3],
  ['onTimeout: a reset, then 503, 503', { onTimeout: true }, { reset: true }, { status: 503 }, 'FST_OSHARA_UPSTREAM_ERROR', 3],
  ['statusCodes [500, 503]: a 500, then 503, 503', { statusCodes: [500, 503] }, { status: 500 }, { status: 503 }, 'FST_OSHARA_UPSTREAM_ERROR', 3],
  ['statusCodes [500] with on429: a 500, then a 429', { statusCodes: [500], on429: true }, { status: 500 }, { status: 429 }, 'FST_OSHARA_UPSTREAM_LIMIT', 2]
]
for (const [name, retry, first, last, code, attempts] of mayHaveCreatedFirst) {
  t.test(`the call's outcome stays unknown once an attempt may have created a session (${name})`, async (t) => {
    const { emulator, client } = await setup(t, { timeoutMs: 100, retry: { ...fast, ...retry } })
    emulator.fault(first)
    emulator.fault(last, 2)
    t.match(await failure(client.createSession(body)), { code, attempts, outcome: 'unknown' }, 'the last attempt created nothing, the first may have')
    t.equal(sessionRequests(emulator).length, attempts)
  })
}

t.test('429 is not retried by default', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 429, headers: { 'retry-after': '0' } }, 2)
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_LIMIT', attempts: 1 })
})

t.test('on429: retried once, only with a Retry-After', async (t) => {
  const { emulator, client } = await setup(t, { retry: { ...fast, on429: true } })
  emulator.fault({ status: 429, headers: { 'retry-after-ms': '20' } })
  t.ok(await client.createSession(body), 'one retry after the server delay')
  t.equal(sessionRequests(emulator).length, 2)

  emulator.clearRequests()
  emulator.fault({ status: 429, headers: { 'retry-after': '0' } }, 3)
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_LIMIT', attempts: 2 }, 'only once')

  emulator.clearFaults()
  emulator.clearRequests()
  emulator.fault({ status: 429 })
  t.match(await failure(client.createSession(body)), { attempts: 1, retryAfterMs: 5000 }, 'not without Retry-After')
})

t.test('Retry-After: 1 on a 503 is waited for', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 503, headers: { 'retry-after': '1' } })
  const started = Date.now()
  t.ok(await client.createSession(body))
  const waited = Date.now() - started
  t.ok(waited >= 950 && waited < 3000, `waited ${waited} ms`)
})

t.test('Retry-After as an HTTP date is waited for', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 503, headers: { 'retry-after': new Date(Date.now() + 1500).toUTCString() } })
  const started = Date.now()
  t.ok(await client.createSession(body))
  t.ok(Date.now() - started >= 400, 'waited for the date (second precision)')
})

t.test('a Retry-After over maxRetryAfterMs ends the call at once with retryAfterMs', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 503, headers: { 'retry-after': '30' } })
  const started = Date.now()
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_ERROR', retryAfterMs: 30000, attempts: 1 })
  t.ok(Date.now() - started < 500)
  emulator.fault({ status: 429, headers: { 'retry-after': '60' } })
  const limited = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: { on429: true } })
  t.teardown(() => limited.close())
  t.match(await failure(limited.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_LIMIT', retryAfterMs: 60000, attempts: 1 })
})

t.test('retries stop at deadlineMs', async (t) => {
  const { emulator, client } = await setup(t, { deadlineMs: 300, retry: { retries: 10, minDelayMs: 100, maxDelayMs: 100 } })
  emulator.fault({ status: 503, headers: { 'retry-after-ms': '120' } }, 20)
  const started = Date.now()
  const error = await failure(client.createSession(body))
  const took = Date.now() - started
  t.match(error, { code: 'FST_OSHARA_UPSTREAM_ERROR' })
  t.ok(error.attempts >= 2 && error.attempts <= 3, `${error.attempts} attempts`)
  t.ok(took < 400, `gave up within the deadline (${took} ms)`)
})

t.test('an attempt never outlives the deadline: its timeout is what is left', async (t) => {
  const { emulator, client } = await setup(t, { timeoutMs: 5000, deadlineMs: 200, retry: { ...fast, onTimeout: true } })
  emulator.fault({ delayMs: 1000 }, 3)
  const started = Date.now()
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_TIMEOUT', statusCode: 504 })
  t.ok(Date.now() - started < 450)
})

t.test('a deadline already spent fails with FST_OSHARA_TIMEOUT before another attempt', async (t) => {
  const { emulator, client } = await setup(t, { timeoutMs: 60, deadlineMs: 61, retry: { retries: 3, minDelayMs: 0, maxDelayMs: 0, onTimeout: true } })
  emulator.fault({ delayMs: 200 }, 5)
  const error = await failure(client.createSession(body))
  t.match(error, { code: 'FST_OSHARA_TIMEOUT' })
  t.ok(sessionRequests(emulator).length <= 2)
})

t.test('getSession is idempotent: a 500 is retried', async (t) => {
  const { emulator, client } = await setup(t)
  const session = await client.createSession(body)
  const slowClient = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, apiKey: 'sk_test_5ecr3t_k3y_value', retry: fast })
  t.teardown(() => slowClient.close())
  emulator.clearRequests()
  // Faults apply to session POSTs only, so break the billing call with a wrong key first: 401 is never retried.
  t.match(await failure(createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: fast }).getSession(session.session_id)), { code: 'FST_OSHARA_UNAUTHORIZED', attempts: 1 })
  t.match(await slowClient.getSession(session.session_id), { session_id: session.session_id })
})
