import t from 'tap'
import type { FastifyRequest } from 'fastify'
import { OsharaAgentNotFoundError, type OsharaVoiceOptions } from '../lib/index.js'
import { buildApp, logCapture, postToken } from './helpers/app.js'
import { sessionRequests, startEmulator } from './helpers/emulator.js'

// Errors thrown by the app's own callbacks: a safe 500 for bugs, the app's 4xx as meant.

/** Reads a property of something undefined, as a callback with a bug does. */
function buggy (request: FastifyRequest): never {
  return (request as unknown as { user: { id: never } }).user.id
}

const callbacks: Array<[string, Partial<OsharaVoiceOptions>]> = [
  ['agent', { agent: buggy }],
  ['session', { session: buggy }],
  ['metadata', { metadata: buggy }],
  ['beforeSession', { beforeSession: buggy }],
  ['onSession', { onSession: buggy }],
  ['response', { response: (_session, request) => buggy(request) }],
  ['limits.key', { limits: { concurrency: 1, key: buggy } }]
]

for (const [callback, options] of callbacks) {
  t.test(`a bug in the ${callback} callback replies 500 with a safe message and logs the original`, async (t) => {
    const emulator = await startEmulator(t)
    const capture = logCapture()
    const app = await buildApp(t, emulator, options, { logger: { stream: capture.stream } })
    const response = await postToken(app)
    t.equal(response.statusCode, 500)
    t.same(response.json(), {
      statusCode: 500, code: 'FST_OSHARA_CALLBACK_FAILED', error: 'Internal Server Error', message: 'The voice session could not be prepared'
    })
    t.notMatch(response.body, /Cannot read properties/)
    const logged = capture.lines().find((line) => line.callback === callback)
    t.match(logged, { level: 50, msg: new RegExp(`the ${callback} option threw`), err: { type: 'TypeError', message: /Cannot read properties of undefined/, stack: /buggy/ } })
  })
}

t.test('errors with a 4xx statusCode from the app\'s callbacks pass through as the app meant them', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    metadata: () => { throw Object.assign(new Error('Log in first.'), { statusCode: 401 }) }
  })
  const response = await postToken(app)
  t.equal(response.statusCode, 401)
  t.equal(response.json().message, 'Log in first.')
  t.equal(sessionRequests(emulator).length, 0)
})

t.test('a response callback that throws frees the session\'s slot', async (t) => {
  const emulator = await startEmulator(t)
  let fail = true
  const app = await buildApp(t, emulator, {
    limits: { concurrency: 1, key: () => 'user-1' },
    response: (session) => {
      if (fail) throw new Error('template missing')
      return { id: session.session_id }
    }
  })
  t.equal((await postToken(app)).statusCode, 500)
  fail = false
  t.equal((await postToken(app)).statusCode, 200, 'the failed reply held no slot')
})

/** What a `response` callback returns that is no JSON object, picked by the `x-reply` header. */
function badReply (which: unknown): unknown {
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  const replies: Record<string, unknown> = { bigint: { n: 1n }, cycle, text: 'hello', undefined, null: null, 'empty-toJSON': { toJSON: () => undefined } }
  return replies[which as string]
}

for (const idempotent of [false, true]) {
  t.test(`a response that returns no JSON object (BigInt, cycle, text, undefined, null, empty toJSON) is a 500 FST_OSHARA_CALLBACK_FAILED naming response and frees the slot${idempotent ? ' (idempotent request)' : ''}`, async (t) => {
    const emulator = await startEmulator(t)
    const capture = logCapture()
    const observed: unknown[] = []
    const app = await buildApp(t, emulator, {
      limits: { concurrency: 1, key: () => 'user-1' },
      idempotency: idempotent,
      response: (session, request) => (request.headers['x-reply'] === undefined ? { id: session.session_id } : badReply(request.headers['x-reply'])) as Record<string, unknown>,
      onSessionError: (_request, error) => { observed.push(error) }
    }, { logger: { stream: capture.stream } })
    const cases = ['bigint', 'cycle', 'text', 'undefined', 'null', 'empty-toJSON']
    for (const which of cases) {
      const reply = await postToken(app, undefined, { 'x-reply': which, ...(idempotent ? { 'idempotency-key': `key-${which}` } : {}) })
      t.equal(reply.statusCode, 500, which)
      t.same(reply.json(), { statusCode: 500, code: 'FST_OSHARA_CALLBACK_FAILED', error: 'Internal Server Error', message: 'The voice session could not be prepared' }, which)
      t.equal(reply.headers['retry-after'], undefined)
      t.equal(app.oshara.stats().activeSlots, 0, `${which}: the slot was freed`)
    }
    t.match(observed, cases.map(() => ({ code: 'FST_OSHARA_CALLBACK_FAILED', callback: 'response' })), 'onSessionError sees which callback failed')
    t.match(capture.lines().filter((line) => line.callback === 'response').map((line) => (line.err as { message: string }).message), [
      /Do not know how to serialize a BigInt/, /circular structure/, /response must return an object, got string/, /got undefined/, /got null/, /toJSON gives nothing to send/
    ])
    const good = await postToken(app, undefined, idempotent ? { 'idempotency-key': 'key-bigint' } : {})
    t.equal(good.statusCode, 200, 'the next request gets the slot (and a failed idempotent request is not replayed)')
    t.match(good.json(), { id: /^sess_/ })
  })
}

t.test('a bug in limits.key on DELETE replies 500 with a safe message', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { limits: { concurrency: 1, key: (request) => request.method === 'DELETE' ? buggy(request) : 'user-1' } })
  const { session_id: sessionId } = (await postToken(app)).json()
  const response = await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId as string}` })
  t.equal(response.statusCode, 500)
  t.equal(response.json().code, 'FST_OSHARA_CALLBACK_FAILED')
})

t.test('an OsharaError the app throws is replied as it is, and an operator fix from the failure table is logged', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const app = await buildApp(t, emulator, {
    beforeSession: () => { throw new OsharaAgentNotFoundError('This voice agent is not available.') }
  }, { logger: { stream: capture.stream } })
  const response = await postToken(app)
  t.equal(response.statusCode, 502)
  t.equal(response.json().code, 'FST_OSHARA_AGENT_NOT_FOUND')
  t.match(capture.lines().find((line) => line.level === 50), { msg: /Check the agent slug/, code: 'FST_OSHARA_AGENT_NOT_FOUND' })
})

t.test('a limits.key that returns no key fails the request (500) instead of switching the limiter off, and DELETE frees no one\'s session', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  // `request.user?.id` with nobody logged in.
  const app = await buildApp(t, emulator, {
    limits: { concurrency: 1, global: 1, key: (request) => request.headers['x-user'] as string }
  }, { logger: { stream: capture.stream } })
  const alice = await postToken(app, {}, { 'x-user': 'alice' })
  t.equal(alice.statusCode, 200)
  for (const [got, headers] of [['undefined', {}], ['an empty string', { 'x-user': '' }]] as const) {
    const response = await postToken(app, {}, headers)
    t.equal(response.statusCode, 500, `${got}: refused`)
    t.equal(response.json().code, 'FST_OSHARA_CALLBACK_FAILED')
    t.match(capture.lines().find((line) => line.callback === 'limits.key' && String((line.err as { message?: string } | undefined)?.message).includes(got)), { level: 50, err: { message: `limits.key must return a non-empty string, got ${got}` } })
  }
  t.equal(sessionRequests(emulator).length, 1, 'no upstream call without a key')
  const release = await app.inject({ method: 'DELETE', url: `/voice-token/${alice.json().session_id as string}` })
  t.equal(release.statusCode, 500, 'a DELETE without a key frees nothing')
  t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${alice.json().session_id as string}`, headers: { 'x-user': 'alice' } })).statusCode, 204, 'alice\'s slot was still held')
})

t.test('a quota.key that returns a number fails the request before any upstream call', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { quota: { window: 'day', sessions: 5, key: () => 42 as unknown as string } })
  const response = await postToken(app)
  t.equal(response.statusCode, 500)
  t.equal(response.json().code, 'FST_OSHARA_CALLBACK_FAILED')
  t.equal(sessionRequests(emulator).length, 0)
})

t.test('errors with a 5xx statusCode from the app\'s callbacks pass through as the app meant them', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    beforeSession: () => { throw Object.assign(new Error('Calls are paused for maintenance.'), { statusCode: 503 }) }
  })
  const response = await postToken(app)
  t.equal(response.statusCode, 503)
  t.equal(response.json().message, 'Calls are paused for maintenance.')
  t.equal(sessionRequests(emulator).length, 0)
})
