import t from 'tap'
import { buildApp, postToken } from './helpers/app.js'
import { sessionRequests, startEmulator } from './helpers/emulator.js'

// What the browser may send, and the 400s naming what it may not (SPEC sections 4 and 9).

t.test('server-only and unknown fields are refused by name, not silently dropped', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  for (const field of ['system_prompt', 'metadata', 'mcp_headers', 'greeting', 'voice_model', 'reference_audio_url', 'origin_url', 'agent', 'surprise']) {
    const response = await postToken(app, { language: 'en', [field]: field === 'metadata' || field === 'mcp_headers' ? { a: 'b' } : 'x' })
    t.equal(response.statusCode, 400, field)
    t.match(response.json(), { code: 'FST_OSHARA_FIELD_NOT_ALLOWED', message: new RegExp(`"${field}"`) })
  }
  t.equal(emulator.requests.length, 0, 'nothing reached Oshara')
})

t.test('clientFields opens exactly the listed fields', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { clientFields: ['language', 'greeting', 'voice_model', 'system_prompt'] })
  const response = await postToken(app, { language: 'de', greeting: 'Hallo', voice_model: 'v1', system_prompt: 'Be brief.' })
  t.equal(response.statusCode, 200)
  t.same(sessionRequests(emulator)[0]?.body, { agent: 'support-bot', language: 'de', greeting: 'Hallo', voice_model: 'v1', system_prompt: 'Be brief.' })
  t.notOk('system_prompt' in response.json())
  t.equal((await postToken(app, { metadata: {} })).json().code, 'FST_OSHARA_FIELD_NOT_ALLOWED')
})

t.test('language: a BCP-47 tag of at most 35 characters, within languages (case-insensitive)', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { languages: ['en', 'pt-BR'] })
  t.equal((await postToken(app, { language: 'PT-br' })).statusCode, 200)
  const outside = await postToken(app, { language: 'fr' })
  t.equal(outside.statusCode, 400)
  t.match(outside.json(), { code: 'FST_OSHARA_FIELD_NOT_ALLOWED', message: /"fr"/ })
  for (const bad of ['e', 'en_US', 'x'.repeat(36), 'en-' + 'a'.repeat(40), 5]) {
    const response = await postToken(app, { language: bad })
    t.equal(response.statusCode, 400)
    t.match(response.json(), { code: 'FST_ERR_VALIDATION', message: /language/ })
  }
})

t.test('agent: only with agents, only from agents', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { agents: ['support-bot', 'sales-bot'] })
  t.equal((await postToken(app, { agent: 'sales-bot' })).statusCode, 200)
  t.equal((sessionRequests(emulator)[0]?.body as { agent: string }).agent, 'sales-bot')
  const outside = await postToken(app, { agent: 'admin-bot' })
  t.equal(outside.statusCode, 400)
  t.match(outside.json(), { code: 'FST_OSHARA_FIELD_NOT_ALLOWED', message: /admin-bot/ })
  t.equal((await postToken(app, { agent: '' })).json().code, 'FST_ERR_VALIDATION')
})

t.test('LiveKit TokenSource.endpoint requests: agent_name is the agent, other values must be empty', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { agents: ['support-bot', 'sales-bot'] })
  const livekit = { room_config: { agents: [{ agent_name: 'sales-bot' }] }, participant_attributes: {}, room_name: '' }
  const response = await postToken(app, livekit)
  t.equal(response.statusCode, 200)
  t.match(response.json(), { server_url: String, participant_token: String })
  t.equal((sessionRequests(emulator)[0]?.body as { agent: string }).agent, 'sales-bot')

  for (const [body, field] of [
    [{ room_name: 'my-room' }, 'room_name'],
    [{ participant_identity: 'me' }, 'participant_identity'],
    [{ participant_name: 'Me' }, 'participant_name'],
    [{ participant_metadata: '{}' }, 'participant_metadata'],
    [{ participant_attributes: { a: 'b' } }, 'participant_attributes'],
    [{ room_config: { agents: [{ agent_name: 'sales-bot', metadata: 'x' }] } }, 'room_config.agents[0].metadata'],
    [{ room_config: { agents: [{ agent_name: 'sales-bot', deployment: 'prod' }] } }, 'room_config.agents[0].deployment'],
    [{ room_config: { agents: [{ agent_name: 'sales-bot', extra: 1 }] } }, 'room_config.agents[0].extra'],
    [{ room_config: { name: 'r' } }, 'room_config.name'],
    [{ room_config: { agents: [{ agent_name: 'admin-bot' }] } }, 'room_config.agents[0].agent_name'],
    [{ agent: 'support-bot', room_config: { agents: [{ agent_name: 'sales-bot' }] } }, 'agent']
  ] as const) {
    const refused = await postToken(app, body)
    t.equal(refused.statusCode, 400, field)
    t.match(refused.json(), { code: 'FST_OSHARA_FIELD_NOT_ALLOWED', message: new RegExp(field.replace(/[[\].]/g, '\\$&')) })
  }
  t.equal((await postToken(app, { room_config: { agents: [{}, {}] } })).json().code, 'FST_ERR_VALIDATION', 'one agent at most')
  t.equal((await postToken(app, { room_config: { agents: [] } })).statusCode, 200, 'no agent: the default')
})

t.test('without agents, a LiveKit agent_name is refused', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  const response = await postToken(app, { room_config: { agents: [{ agent_name: 'support-bot' }] } })
  t.equal(response.statusCode, 400)
  t.match(response.json(), { code: 'FST_OSHARA_FIELD_NOT_ALLOWED', message: /agent_name/ })
})

t.test('malformed JSON, non-object bodies, oversized bodies, prototype keys', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  t.equal((await postToken(app, '{"language":')).statusCode, 400, 'malformed JSON')
  for (const body of ['[]', '"en"', '5', 'null', 'true']) {
    const response = await postToken(app, body)
    t.equal(response.statusCode, 400, `non-object ${body}`)
  }
  const huge = await postToken(app, JSON.stringify({ language: 'en', pad: 'x'.repeat(20 * 1024) }))
  t.equal(huge.statusCode, 413, 'over the 16 KiB default body limit')
  t.equal(huge.json().code, 'FST_ERR_CTP_BODY_TOO_LARGE')
  const proto = await postToken(app, '{"__proto__": {"admin": true}}')
  t.equal(proto.statusCode, 400)
  const ctor = await postToken(app, '{"constructor": {"prototype": {"admin": true}}}')
  t.equal(ctor.statusCode, 400)
  const plainCtor = await postToken(app, '{"constructor": "x"}')
  t.equal(plainCtor.statusCode, 400)
  t.equal(plainCtor.json().code, 'FST_OSHARA_FIELD_NOT_ALLOWED')
  t.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype was polluted')
  t.equal(emulator.requests.length, 0)
})

t.test('routeOptions.bodyLimit replaces the 16 KiB default', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { routeOptions: { bodyLimit: 64 } })
  t.equal((await postToken(app, { language: 'en', room_name: 'x'.repeat(80) })).statusCode, 413)
})
