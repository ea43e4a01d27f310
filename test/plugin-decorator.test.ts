import t from 'tap'
import { waitUntil } from './helpers/wait.js'
import Fastify from 'fastify'
import osharaVoice, { createOsharaClient, OsharaError } from '../lib/index.js'
import { buildApp, logCapture, postToken } from './helpers/app.js'
import { ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'

// fastify.oshara (SPEC section 7), shared clients, and the browser going away.

t.test('createSession for native apps: same client, full session, no request-based options', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { metadata: () => ({ from: 'extractor' }), route: false })
  t.notOk(app.hasRoute({ method: 'POST', url: '/voice-token' }), 'route: false')
  const session = await app.oshara.createSession({ metadata: { user_id: 'mobile-1' }, language: 'it' })
  t.match(session, { session_id: /^sess_/, system_prompt: String, token: String })
  t.same(sessionRequests(emulator)[0]?.body, { agent: 'support-bot', metadata: { user_id: 'mobile-1' }, language: 'it' })
  await app.oshara.createSession({ agent: 'sales-bot' })
  t.equal((sessionRequests(emulator)[1]?.body as { agent: string }).agent, 'sales-bot')
  t.equal(app.oshara.client.origin, ORIGIN)
  t.equal(await app.oshara.releaseSession(session.session_id), false, 'no limits: nothing to release')
})

t.test('createSession rejects with the client errors', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { retry: false })
  emulator.fault({ status: 404 })
  await t.rejects(app.oshara.createSession({}), { code: 'FST_OSHARA_AGENT_NOT_FOUND', statusCode: 502 })
  await t.rejects(app.oshara.createSession({}, { signal: AbortSignal.abort() }), { code: 'FST_OSHARA_ABORTED', attempts: 0, outcome: 'not_created' })
})

t.test('createSession needs input.agent when the plugin agent is a function', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { agent: () => 'support-bot' })
  await t.rejects(app.oshara.createSession({}), { code: 'FST_OSHARA_INVALID_SESSION', message: /input\.agent/ })
  t.ok(await app.oshara.createSession({ agent: 'support-bot' }))
})

t.test('createSession rejects metadata JSON cannot carry with FST_OSHARA_INVALID_SESSION, with or without an idempotencyKey: nothing sent, no slot held', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { idempotency: true, limits: { concurrency: 1 } })
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  for (const [metadata, options] of [[{ n: 10n }, { key: 'k' }], [cycle, { key: 'k' }], [{ n: 10n }, { key: 'k', idempotencyKey: 'once' }]] as const) {
    await t.rejects(app.oshara.createSession({ metadata }, options), {
      code: 'FST_OSHARA_INVALID_SESSION',
      message: 'The voice session could not be prepared',
      detail: /^the session request cannot be sent as JSON: /,
      fix: /plain JSON data/
    }, JSON.stringify(options))
  }
  t.equal(sessionRequests(emulator).length, 0, 'nothing was sent upstream')
  t.equal(app.oshara.stats().activeSlots, 0)
  t.same(app.oshara.stats().failed, { FST_OSHARA_INVALID_SESSION: 3 })
  t.ok(await app.oshara.createSession({ metadata: { n: '10' } }, { key: 'k', idempotencyKey: 'once' }), 'the key was not taken by the failure')
})

t.test('registrations sharing one client; the client is not closed by the plugin', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url })
  t.teardown(() => client.close())
  const app = Fastify()
  await app.register(osharaVoice, { client, agent: 'support-bot', path: '/a', decorator: 'voiceA' })
  await app.register(osharaVoice, { client, origin: ORIGIN, agent: 'sales-bot', path: '/b', decorator: false })
  t.equal((await app.inject({ method: 'POST', url: '/a' })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/b' })).statusCode, 200)
  await app.close()
  t.ok(await client.createSession({ agent: 'support-bot' }), 'still usable after the app closed')
})

t.test('a client the plugin made is closed with the app', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  const { client } = app.oshara
  await app.close()
  await t.rejects(client.createSession({ agent: 'support-bot' }), { code: 'FST_OSHARA_UNAVAILABLE', message: /closed/ })
})

t.test('the browser disconnecting mid-call: upstream request closed, no server fault logged', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const errors: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: capture.stream } })
  await app.register(osharaVoice, {
    origin: ORIGIN,
    agent: 'support-bot',
    baseUrl: emulator.url,
    onSessionError: (_request, error) => { errors.push((error as OsharaError).code) }
  })
  t.teardown(() => app.close())
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  emulator.fault({ delayMs: 5000 })
  const controller = new AbortController()
  const call = fetch(`${url}/voice-token`, { method: 'POST', signal: controller.signal }).catch((error: Error) => error)
  await emulator.waitForRequest(() => true)
  controller.abort()
  const closed = await emulator.waitForRequest((request) => request.aborted, 1000)
  t.ok(closed.aborted, 'the emulator saw its request closed')
  t.ok((await call) instanceof Error)
  await waitUntil(() => errors.length > 0, 'onSessionError saw the failure')
  t.same(errors, ['FST_OSHARA_ABORTED'])
  t.same(capture.lines().filter((line) => (line.level as number) >= 50), [], 'nothing logged at error level')
  t.equal(emulator.sessions.size, 0)
})

t.test('a body the browser sends with postToken helper still works after a disconnect', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  t.equal((await postToken(app, {})).statusCode, 200)
})
