import t from 'tap'
import Fastify from 'fastify'
import osharaVoice, { OsharaError, OsharaInvalidSessionError, OsharaSessionLimitError } from '../lib/index.js'
import { buildApp, logCapture, postToken } from './helpers/app.js'
import { ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'

// agent resolver, session overrides, beforeSession, onSession, onSessionError (SPEC section 6).

t.test('agent as an async function, session overrides win over browser fields', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    agent: async (request) => request.headers['x-team'] === 'sales' ? 'sales-bot' : 'support-bot',
    clientFields: ['language', 'greeting'],
    session: async () => ({ greeting: 'Server greeting', mcp_headers: { authorization: 'Bearer srv' }, voice_model: 'v2' })
  })
  t.equal((await postToken(app, { language: 'en', greeting: 'Browser greeting' }, { 'x-team': 'sales' })).statusCode, 200)
  t.same(sessionRequests(emulator)[0]?.body, {
    agent: 'sales-bot', language: 'en', greeting: 'Server greeting', voice_model: 'v2', mcp_headers: { authorization: 'Bearer srv' }
  })
})

t.test('beforeSession edits the draft or denies', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    beforeSession: (request, draft) => {
      if (request.headers['x-deny'] === 'limit') throw new OsharaSessionLimitError('Your plan allows no more calls today.', { retryAfterMs: 3600_000 })
      if (request.headers['x-deny'] === 'plain') throw Object.assign(new Error('Upgrade first'), { statusCode: 402 })
      draft.language = 'es'
      draft.metadata = { ...draft.metadata, edited: true }
    }
  })
  t.equal((await postToken(app)).statusCode, 200)
  t.same(sessionRequests(emulator)[0]?.body, { agent: 'support-bot', language: 'es', metadata: { edited: true } })

  const limited = await postToken(app, undefined, { 'x-deny': 'limit' })
  t.equal(limited.statusCode, 429)
  t.equal(limited.headers['retry-after'], '3600')
  t.match(limited.json(), { code: 'FST_OSHARA_SESSION_LIMIT', message: 'Your plan allows no more calls today.' })
  const plain = await postToken(app, undefined, { 'x-deny': 'plain' })
  t.equal(plain.statusCode, 402)
  t.equal(sessionRequests(emulator).length, 1, 'denied requests never reach Oshara')
})

t.test('a draft made invalid by a hook is a 500 FST_OSHARA_INVALID_SESSION, not an upstream call', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { beforeSession: (_request, draft) => { (draft as Record<string, unknown>).language = 42 } })
  const response = await postToken(app)
  t.equal(response.statusCode, 500)
  t.equal(response.json().code, 'FST_OSHARA_INVALID_SESSION')
  t.equal(emulator.requests.length, 0)
})

/** Metadata JSON cannot carry, picked by the `x-metadata` header. */
function unsendableMetadata (which: unknown): Record<string, unknown> {
  if (which === 'bigint') return { user_id: 'u', n: 10n }
  const cycle: Record<string, unknown> = { user_id: 'u' }
  cycle.self = cycle
  return cycle
}

t.test('metadata JSON cannot carry (a BigInt, a cycle) is a 500 FST_OSHARA_INVALID_SESSION with a safe message: no upstream call, the slot freed, onSessionError and stats see it', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const observed: unknown[] = []
  const app = await buildApp(t, emulator, {
    limits: { concurrency: 1, key: () => 'user-1' },
    metadata: (request) => request.headers['x-metadata'] === undefined ? { user_id: 'u' } : unsendableMetadata(request.headers['x-metadata']),
    beforeSession: (request, draft) => { if (request.headers['x-draft'] === 'bigint') draft.metadata = { big: 1n } },
    onSessionError: (_request, error) => { observed.push(error) }
  }, { logger: { level: 'info', stream: capture.stream } })
  for (const headers of [{ 'x-metadata': 'bigint' }, { 'x-metadata': 'cycle' }, { 'x-draft': 'bigint' }] as Array<Record<string, string>>) {
    const reply = await postToken(app, undefined, headers)
    t.equal(reply.statusCode, 500, JSON.stringify(headers))
    t.same(reply.json(), { statusCode: 500, code: 'FST_OSHARA_INVALID_SESSION', error: 'Internal Server Error', message: 'The voice session could not be prepared' })
    t.equal(app.oshara.stats().activeSlots, 0, 'the slot was freed')
  }
  t.equal(sessionRequests(emulator).length, 0, 'nothing was sent upstream')
  t.equal(observed.length, 3)
  t.ok(observed.every((error) => error instanceof OsharaInvalidSessionError), 'onSessionError sees the OsharaError')
  t.match(observed[0], { detail: 'the session request cannot be sent as JSON: Do not know how to serialize a BigInt', fix: /plain JSON data: no BigInt/ })
  t.match(observed[1], { detail: /^the session request cannot be sent as JSON: Converting circular structure to JSON/ })
  t.same(app.oshara.stats().failed, { FST_OSHARA_INVALID_SESSION: 3 })
  const logged = capture.lines().find((line) => line.level === 50 && (line.err as { code?: string } | undefined)?.code === 'FST_OSHARA_INVALID_SESSION')
  t.match(logged, { err: { detail: /Do not know how to serialize a BigInt/, fix: /no BigInt/ } }, 'the problem and the fix are logged')
  t.notOk(capture.lines().some((line) => String(line.msg).includes('could not be reached')), 'not logged as an unreachable upstream')
  t.equal((await postToken(app)).statusCode, 200, 'the next request gets the slot')
})

t.test('a language the server sets must be a BCP-47 tag, as the browser\'s: 500 FST_OSHARA_INVALID_SESSION, no upstream call', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    session: (request) => request.headers['x-case'] === 'session' ? { language: 'SECRETVAL 9' } : {},
    beforeSession: (request, draft) => { if (request.headers['x-case'] === 'beforeSession') draft.language = 'en_US' }
  })
  for (const which of ['session', 'beforeSession']) {
    const reply = await postToken(app, undefined, { 'x-case': which })
    t.equal(reply.statusCode, 500, which)
    t.match(reply.json(), { code: 'FST_OSHARA_INVALID_SESSION', message: 'invalid session request: language is not a BCP-47 language tag of at most 35 characters' })
    t.notMatch(reply.body, /SECRETVAL|en_US/, 'never the value')
  }
  await t.rejects(app.oshara.createSession({ language: 'english please' }), { code: 'FST_OSHARA_INVALID_SESSION', message: /language is not a BCP-47/ })
  t.equal(sessionRequests(emulator).length, 0, 'nothing was sent upstream')
  t.equal((await postToken(app, { language: 'pt-BR' })).statusCode, 200)
})

t.test('onSession sees the full session; a throw fails the request with 500', async (t) => {
  const emulator = await startEmulator(t)
  const seen: string[] = []
  const app = await buildApp(t, emulator, {
    onSession: async (request, session) => {
      seen.push(session.system_prompt as string)
      if (request.headers['x-fail'] === '1') throw new Error('database down')
    }
  })
  t.equal((await postToken(app)).statusCode, 200)
  t.same(seen, ['You are a helpful support agent.'])
  const failed = await postToken(app, undefined, { 'x-fail': '1' })
  t.equal(failed.statusCode, 500)
  t.match(failed.json(), { code: 'FST_OSHARA_CALLBACK_FAILED', message: 'The voice session could not be prepared' })
})

t.test('onSessionError observes every failure and cannot change the reply', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const observed: string[] = []
  const app = await buildApp(t, emulator, {
    retry: false,
    metadata: (request) => {
      if (request.headers['x-meta'] === 'boom') throw new Error('no user')
      return {}
    },
    onSession: (request) => { if (request.headers['x-fail'] === '1') throw new Error('hook failed') },
    onSessionError: (_request, error) => {
      const cause = error.cause as Error | undefined
      observed.push(cause === undefined ? (error as OsharaError).code : `${(error as OsharaError).code}: ${cause.message}`)
      throw new Error('observer broke')
    }
  }, { logger: { level: 'info', stream: capture.stream } })
  emulator.fault({ status: 404 })
  t.equal((await postToken(app)).statusCode, 502)
  t.equal((await postToken(app, { metadata: {} })).statusCode, 400)
  t.equal((await postToken(app, undefined, { 'x-meta': 'boom' })).statusCode, 500)
  t.equal((await postToken(app, undefined, { 'x-fail': '1' })).statusCode, 500)
  t.same(observed, ['FST_OSHARA_AGENT_NOT_FOUND', 'FST_OSHARA_CALLBACK_FAILED: no user', 'FST_OSHARA_CALLBACK_FAILED: hook failed'], 'route validation errors happen before the pipeline')
  t.equal(capture.lines().filter((line) => line.msg === 'oshara: onSessionError hook threw; the reply is unchanged').length, 3)
})

t.test('hooks from routeOptions run, in order, before ours', async (t) => {
  const emulator = await startEmulator(t)
  const order: string[] = []
  const app = Fastify()
  await app.register(osharaVoice, {
    origin: ORIGIN,
    agent: 'support-bot',
    baseUrl: emulator.url,
    routeOptions: {
      onRequest: [async () => { order.push('onRequest') }],
      preValidation: [async (request) => {
        order.push('preValidation')
        // A user hook may clean the body before our field check.
        delete (request.body as Record<string, unknown> | undefined)?.csrf
      }],
      preHandler: async () => { order.push('preHandler') },
      config: { rateLimit: { max: 5 } } as Record<string, unknown>
    },
    onSession: () => { order.push('onSession') }
  })
  app.addHook('onRoute', () => {})
  t.teardown(() => app.close())
  const response = await postToken(app, { csrf: 'token', language: 'en' })
  t.equal(response.statusCode, 200)
  t.same(order, ['onRequest', 'preValidation', 'preHandler', 'onSession'])
  const route = app.hasRoute({ method: 'POST', url: '/voice-token' })
  t.ok(route)
})
