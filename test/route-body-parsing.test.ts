import t from 'tap'
import Fastify from 'fastify'
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
