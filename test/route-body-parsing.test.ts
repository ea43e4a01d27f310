import { request as httpRequest } from 'node:http'
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import osharaVoice from '../lib/index.js'
import { buildApp, postToken } from './helpers/app.js'
import { ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'

// How the plugin's own routes parse and validate bodies, whatever the app's settings.

t.test('wrong JSON types are refused, never coerced and sent upstream', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { agents: ['support-bot', 'sales-bot'], clientFields: ['language', 'greeting'] })
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ language: true }, /language/],
    [{ language: 7 }, /language/],
    [{ agent: ['sales-bot'] }, /agent/],
    [{ greeting: null }, /greeting/],
    [{ room_config: { agents: [{ agent_name: 1 }] } }, /agent_name/]
  ]
  for (const [body, field] of cases) {
    const response = await postToken(app, body)
    t.equal(response.statusCode, 400, JSON.stringify(body))
    t.match(response.json(), { code: 'FST_ERR_VALIDATION', message: field })
  }
  t.equal((await postToken(app, 'null')).statusCode, 400, 'a JSON null body is not an object')
  t.equal(sessionRequests(emulator).length, 0, 'nothing reached Oshara')
})

t.test('wrong JSON types are refused even when the app coerces types in its own Ajv', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { clientFields: ['language', 'greeting'] }, {
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: 'all', useDefaults: true } }
  })
  for (const body of [{ language: true }, { greeting: null }, { greeting: ['hi'] }]) {
    t.equal((await postToken(app, body)).statusCode, 400, JSON.stringify(body))
  }
  t.equal((await postToken(app, { language: 'fr', greeting: 'Salut' })).statusCode, 200)
  t.same(sessionRequests(emulator)[0]?.body, { agent: 'support-bot', language: 'fr', greeting: 'Salut' })
})

t.test('Content-Type: application/json with an empty body is accepted by POST and DELETE', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { limits: { concurrency: 1, key: () => 'user-1' } })
  const json = { 'content-type': 'application/json' }
  const minted = await app.inject({ method: 'POST', url: '/voice-token', headers: json })
  t.equal(minted.statusCode, 200)
  const sessionId = minted.json().session_id as string
  const explicitlyEmpty = await app.inject({ method: 'POST', url: '/voice-token', headers: { ...json, 'content-length': '0' } })
  t.equal(explicitlyEmpty.statusCode, 429, 'an explicit Content-Length: 0 is an empty body too (and the limit holds)')
  const released = await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId}`, headers: json })
  t.equal(released.statusCode, 204, 'the slot is freed')
  t.equal((await postToken(app, undefined, json)).statusCode, 200)
})

t.test('the app\'s own route hooks still see an empty JSON body\'s Content-Type, with or without preParsing hooks', async (t) => {
  const emulator = await startEmulator(t)
  for (const stages of [['onRequest'], ['onRequest', 'preParsing']]) {
    const seen: string[] = []
    const routeOptions = Object.fromEntries(stages.map((stage) => [stage, async (request: { url: string, headers: Record<string, unknown> }) => {
      seen.push(`${stage} ${request.url.split('/')[1]} ${String(request.headers['content-type'])}`)
    }]))
    const app = await buildApp(t, emulator, { limits: { concurrency: 1, key: () => 'user-1' }, routeOptions })
    const json = { 'content-type': 'application/json' }
    const minted = await app.inject({ method: 'POST', url: '/voice-token', headers: json })
    t.equal(minted.statusCode, 200, stages.join(' + '))
    t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${minted.json().session_id as string}`, headers: json })).statusCode, 204)
    t.same(seen, [...stages, ...stages].map((stage) => `${stage} voice-token application/json`), stages.join(' + '))
  }
})

t.test('the app\'s other routes still refuse an empty JSON body', async (t) => {
  const emulator = await startEmulator(t)
  const app = Fastify()
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', baseUrl: emulator.url, public: true })
  app.post('/other', async (request) => ({ body: request.body ?? null }))
  t.teardown(() => app.close())
  const other = await app.inject({ method: 'POST', url: '/other', headers: { 'content-type': 'application/json' } })
  t.equal(other.statusCode, 400)
  t.equal(other.json().code, 'FST_ERR_CTP_EMPTY_JSON_BODY')
  const ours = await app.inject({ method: 'POST', url: '/voice-token', headers: { 'content-type': 'application/json' } })
  t.equal(ours.statusCode, 200)
})

t.test('session ids over 100 characters can be released by DELETE', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { limits: { concurrency: 1, key: () => 'user-1' } })
  for (const length of [101, 400]) {
    const sessionId = `sess_${'a'.repeat(length - 5)}`
    emulator.fault({
      status: 200,
      body: { token: 't.t.t', livekit_url: 'ws://127.0.0.1:7880', session_id: sessionId, room_name: 'r', participant_identity: 'p', expires_in_seconds: 3600 }
    })
    t.equal((await postToken(app)).json().session_id, sessionId)
    t.equal((await postToken(app)).statusCode, 429, 'held')
    const released = await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId}` })
    t.equal(released.statusCode, 204, `${length} characters`)
    t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId}` })).statusCode, 404, 'released once')
  }
  const minted = (await postToken(app)).json()
  t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${minted.session_id as string}` })).statusCode, 204, 'short ids still work')
})

t.test('an empty JSON body is no body however it arrives: chunked, or with a charset', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const chunked = await new Promise<number | undefined>((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/voice-token', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (response) => {
      response.resume()
      resolve(response.statusCode)
    })
    request.on('error', reject)
    // No chunk: only the terminating one is sent.
    request.end()
  })
  t.equal(chunked, 200, 'Transfer-Encoding: chunked with no chunk')
  const charset = await app.inject({ method: 'POST', url: '/voice-token', headers: { 'content-type': 'application/json; charset=utf-8' } })
  t.equal(charset.statusCode, 200, 'application/json; charset=utf-8')
  t.same(sessionRequests(emulator).map((request) => request.body), [{ agent: 'support-bot' }, { agent: 'support-bot' }])
})

t.test('invalid JSON is still a 400 on both routes, and the app\'s prototype-poisoning setting holds', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { limits: { concurrency: 1, key: () => 'user-1' } }, { onProtoPoisoning: 'remove' })
  const minted = await postToken(app)
  const sessionId = minted.json().session_id as string
  const malformed = await postToken(app, '{"language":')
  t.equal(malformed.statusCode, 400)
  t.equal(malformed.json().code, 'FST_ERR_CTP_INVALID_JSON_BODY')
  const release = await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId}`, headers: { 'content-type': 'application/json' }, payload: '{' })
  t.equal(release.statusCode, 400)
  t.equal(release.json().code, 'FST_ERR_CTP_INVALID_JSON_BODY')
  t.equal((await postToken(app)).statusCode, 429, 'the refused DELETE freed nothing')
  t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId}` })).statusCode, 204)
  // With onProtoPoisoning: 'remove' the key is dropped, not refused: the app's setting, not Fastify's default.
  const proto = await postToken(app, '{"__proto__": {"admin": true}, "language": "en"}')
  t.equal(proto.statusCode, 200)
  t.same(sessionRequests(emulator).at(-1)?.body, { agent: 'support-bot', language: 'en' })
  t.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype was polluted')
})

t.test('the app\'s routeOptions hooks run in Fastify\'s order, after the app-wide ones, with the app\'s decorators, on an empty JSON body', async (t) => {
  const emulator = await startEmulator(t)
  const app = Fastify()
  const seen: string[] = []
  let responded!: () => void
  let onResponses = 0
  const bothResponded = new Promise<void>((resolve) => { responded = resolve })
  app.decorate('whoami', function whoami (this: FastifyInstance) { return 'the app' })
  app.addHook('onRequest', async (request) => { seen.push(`app onRequest ${request.method}`) })
  const stage = (name: string) => async function (this: FastifyInstance & { whoami: () => string }, request: FastifyRequest) {
    seen.push(`${name} ${request.method} ${String(request.headers['content-type'])} ${this.whoami()}`)
    if (name === 'onResponse' && ++onResponses === 2) responded()
  }
  const stages = ['onRequest', 'preParsing', 'preValidation', 'preHandler', 'preSerialization', 'onSend', 'onResponse'] as const
  await app.register(osharaVoice, {
    origin: ORIGIN,
    agent: 'support-bot',
    baseUrl: emulator.url,
    checkOnReady: false,
    limits: { concurrency: 1, key: () => 'user-1' },
    routeOptions: Object.fromEntries(stages.map((name) => [name, stage(name)]))
  })
  t.teardown(() => app.close())
  const json = { 'content-type': 'application/json' }
  const minted = await app.inject({ method: 'POST', url: '/voice-token', headers: json })
  t.equal(minted.statusCode, 200)
  const released = await app.inject({ method: 'DELETE', url: `/voice-token/${minted.json().session_id as string}`, headers: json })
  t.equal(released.statusCode, 204)
  await bothResponded
  const expected = (method: string, names: readonly string[]): string[] => [`app onRequest ${method}`, ...names.map((name) => `${name} ${method} application/json the app`)]
  t.same(seen, [
    ...expected('POST', stages),
    // A 204 has no payload to serialize.
    ...expected('DELETE', stages.filter((name) => name !== 'preSerialization'))
  ])
})

t.test('an app that replaces the JSON parser keeps it on its other routes; the plugin\'s routes parse with Fastify\'s own', async (t) => {
  const emulator = await startEmulator(t)
  const app = Fastify()
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    done(null, { parsedByTheApp: true, length: (body as string).length })
  })
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', baseUrl: emulator.url, checkOnReady: false, public: true })
  app.post('/other', async (request) => request.body)
  t.teardown(() => app.close())
  const other = await app.inject({ method: 'POST', url: '/other', headers: { 'content-type': 'application/json' }, payload: '{}' })
  t.same(other.json(), { parsedByTheApp: true, length: 2 })
  t.equal((await postToken(app, { language: 'fr' })).statusCode, 200)
  t.equal((await postToken(app, undefined, { 'content-type': 'application/json' })).statusCode, 200)
  t.same(sessionRequests(emulator).map((request) => request.body), [{ agent: 'support-bot', language: 'fr' }, { agent: 'support-bot' }])
})

t.test('an empty body with another Content-Type is read as that type: text/plain is not an object, an unknown type is refused', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  const text = await app.inject({ method: 'POST', url: '/voice-token', headers: { 'content-type': 'text/plain' } })
  t.equal(text.statusCode, 400)
  t.equal(text.json().code, 'FST_ERR_VALIDATION')
  const form = await app.inject({ method: 'POST', url: '/voice-token', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(form.statusCode, 415)
  t.equal(form.json().code, 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
  t.equal(sessionRequests(emulator).length, 0)
})
