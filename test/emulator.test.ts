import t, { type Test } from 'tap'
import { createOsharaEmulator, type EmulatorOptions, type OsharaEmulator } from '../lib/emulator.js'
import { signToken, verifyToken } from '../lib/emulator/jwt.js'

const ORIGIN = 'https://app.example.com'
const SESSION_PATH = '/api/agents/agent-session/'

const characters: EmulatorOptions['characters'] = [
  { slug: 'support-bot', allowed_origins: [ORIGIN, 'https://slash.example.com/'], system_prompt: 'Be helpful.', greeting: 'Hi!', language: 'en' },
  { slug: 'bare', allowed_origins: [ORIGIN] },
  { slug: 'limited', allowed_origins: [ORIGIN], max_concurrent_sessions: 1 },
  { slug: 'retired', allowed_origins: [ORIGIN], active: false }
]

async function start (t: Test, options: Partial<EmulatorOptions> = {}): Promise<OsharaEmulator> {
  const emulator = await createOsharaEmulator({ characters, apiKeys: ['sk_good'], ...options })
  t.teardown(() => emulator.close())
  return emulator
}

interface Answer {
  status: number
  headers: Headers
  body: any
}

async function answer (res: Response): Promise<Answer> {
  return { status: res.status, headers: res.headers, body: await res.json() }
}

async function post (emulator: OsharaEmulator, body: unknown, headers: Record<string, string> = {}, path = SESSION_PATH): Promise<Answer> {
  return answer(await fetch(emulator.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: ORIGIN, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body)
  }))
}

async function billing (emulator: OsharaEmulator, sessionId: string, headers: Record<string, string> = { 'x-api-key': 'sk_good' }): Promise<Answer> {
  return answer(await fetch(`${emulator.url}/api/billing/sessions/${sessionId}/`, { headers }))
}

t.test('mints a session with a signed LiveKit token', async (t) => {
  const emulator = await start(t)
  t.match(emulator.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(emulator.url, `http://127.0.0.1:${emulator.port}`)

  const metadata = { user_id: 'u1', email: 'a@example.com' }
  const { status, headers, body } = await post(emulator, { agent: 'support-bot', metadata, unknown_field: 1 })
  t.equal(status, 200)
  t.equal(headers.get('content-type'), 'application/json')
  t.match(body, {
    livekit_url: 'ws://127.0.0.1:7880',
    room_name: /^oshara-voice-support-bot-[0-9a-f]+$/,
    participant_identity: /^user-[0-9a-f]+$/,
    session_id: /^sess_[0-9a-f]+$/,
    expires_in_seconds: 3600,
    character_slug: 'support-bot',
    system_prompt: 'Be helpful.',
    greeting: 'Hi!'
  })

  const claims = verifyToken(body.token, 'secret')
  t.ok(claims, 'signed with the default secret')
  t.match(claims, {
    iss: 'devkey',
    sub: body.participant_identity,
    name: body.participant_identity,
    jti: String,
    metadata: JSON.stringify(metadata),
    video: { room: body.room_name, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true }
  })
  t.equal(claims?.exp, (claims?.iat as number) + 3600)
  t.equal(claims?.nbf, claims?.iat)
  t.equal(verifyToken(body.token, 'other'), null, 'another secret does not verify')

  const session = emulator.sessions.get(body.session_id)
  t.match(session, { character_slug: 'support-bot', language: 'en', metadata, ended: false, room_name: body.room_name })
  t.equal(emulator.activeSessions(), 1)
  t.equal(emulator.activeSessions('support-bot'), 1)
  t.equal(emulator.activeSessions('bare'), 0)
})

t.test('per-session overrides, defaults and options', async (t) => {
  const emulator = await start(t, {
    tokenTtlSeconds: 60,
    livekitUrl: 'wss://lk.example.com',
    livekitApiKey: 'APIkey',
    livekitApiSecret: 'topsecret',
    host: '127.0.0.1'
  })
  const overridden = await post(emulator, { agent: 'support-bot', language: 'fr', system_prompt: 'Be brief.', greeting: 'Salut' })
  t.match(overridden.body, { system_prompt: 'Be brief.', greeting: 'Salut', expires_in_seconds: 60, livekit_url: 'wss://lk.example.com' })
  t.equal(emulator.sessions.get(overridden.body.session_id)?.language, 'fr')
  const claims = verifyToken(overridden.body.token, 'topsecret')
  t.equal(claims?.iss, 'APIkey')
  t.equal(claims?.exp, (claims?.iat as number) + 60)
  t.notOk('metadata' in (claims as object), 'no metadata claim without metadata')

  const bare = await post(emulator, { agent: 'bare' })
  t.match(bare.body, { system_prompt: '', greeting: '' })
  t.equal(emulator.sessions.get(bare.body.session_id)?.language, undefined)
})

t.test('accepts the path without the trailing slash, and a query string', async (t) => {
  const emulator = await start(t)
  t.equal((await post(emulator, { agent: 'bare' }, {}, '/api/agents/agent-session')).status, 200)
  t.equal((await post(emulator, { agent: 'bare' }, {}, `${SESSION_PATH}?x=1`)).status, 200)
})

t.test('validation answers 400 naming the field', async (t) => {
  const emulator = await start(t)
  const cases: Array<[unknown, RegExp]> = [
    ['not json', /JSON object/],
    ['', /JSON object/],
    [[1], /JSON object/],
    [null, /JSON object/],
    [{}, /^agent/],
    [{ agent: '' }, /^agent/],
    [{ agent: 42 }, /^agent/],
    [{ agent: 'bare', language: 1 }, /^language/],
    [{ agent: 'bare', system_prompt: null }, /^system_prompt/],
    [{ agent: 'bare', greeting: [] }, /^greeting/],
    [{ agent: 'bare', voice_model: {} }, /^voice_model/],
    [{ agent: 'bare', reference_audio_url: true }, /^reference_audio_url/],
    [{ agent: 'bare', origin_url: 2 }, /^origin_url/],
    [{ agent: 'bare', mcp_headers: 'x' }, /^mcp_headers/],
    [{ agent: 'bare', mcp_headers: { a: 1 } }, /^mcp_headers/],
    [{ agent: 'bare', metadata: [] }, /^metadata/],
    [{ agent: 'bare', metadata: 'x' }, /^metadata/]
  ]
  for (const [body, detail] of cases) {
    const res = await post(emulator, body)
    t.equal(res.status, 400, JSON.stringify(body))
    t.match(res.body, { detail }, JSON.stringify(body))
  }
  const valid = await post(emulator, {
    agent: 'bare',
    language: 'en',
    voice_model: 'v',
    reference_audio_url: 'https://a/b.wav',
    origin_url: 'https://app.example.com/page',
    mcp_headers: { authorization: 'Bearer x' },
    metadata: {}
  })
  t.equal(valid.status, 200)
  t.equal(emulator.sessions.size, 1, 'only the valid request made a session')
})

t.test('API key on the session endpoint', async (t) => {
  t.test('optional by default', async (t) => {
    const emulator = await start(t)
    t.equal((await post(emulator, { agent: 'bare' })).status, 200)
    t.equal((await post(emulator, { agent: 'bare' }, { 'x-api-key': 'sk_good' })).status, 200)
    const bad = await post(emulator, { agent: 'bare' }, { 'x-api-key': 'sk_bad' })
    t.same(bad, { ...bad, status: 401, body: { detail: 'Invalid API key.' } })
  })
  t.test('required with requireApiKey', async (t) => {
    const emulator = await start(t, { requireApiKey: true })
    const missing = await post(emulator, { agent: 'bare' })
    t.equal(missing.status, 401)
    t.match(missing.body, { detail: String })
    t.equal((await post(emulator, { agent: 'bare' }, { 'x-api-key': 'sk_good' })).status, 200)
  })
  t.test('no keys configured', async (t) => {
    const emulator = await start(t, { apiKeys: undefined })
    t.equal((await post(emulator, { agent: 'bare' }, { 'x-api-key': 'sk_good' })).status, 401)
  })
})

t.test('Origin must be allowed for the character', async (t) => {
  const emulator = await start(t)
  const forbidden = { detail: 'Origin not allowed for this agent.' }
  const wrong = await post(emulator, { agent: 'support-bot' }, { origin: 'https://evil.example.com' })
  t.equal(wrong.status, 403)
  t.same(wrong.body, forbidden)
  const missing = await answer(await fetch(emulator.url + SESSION_PATH, { method: 'POST', body: '{"agent":"bare"}' }))
  t.equal(missing.status, 403)
  t.same(missing.body, forbidden)
  t.equal((await post(emulator, { agent: 'support-bot' }, { origin: `${ORIGIN}/` })).status, 200, 'trailing slash on the header')
  t.equal((await post(emulator, { agent: 'support-bot' }, { origin: 'https://slash.example.com' })).status, 200, 'trailing slash in allowed_origins')
  t.equal((await post(emulator, { agent: 'support-bot' }, { origin: `${ORIGIN}//` })).status, 403, 'only one slash is stripped')
})

t.test('unknown or inactive character answers 404', async (t) => {
  const emulator = await start(t)
  for (const agent of ['nobody', 'retired']) {
    const res = await post(emulator, { agent })
    t.equal(res.status, 404, agent)
    t.match(res.body, { detail: String })
  }
})

t.test('concurrent session limit, ending and expiry', async (t) => {
  const emulator = await start(t)
  const first = await post(emulator, { agent: 'limited' })
  t.equal(first.status, 200)
  const limited = await post(emulator, { agent: 'limited' })
  t.equal(limited.status, 429)
  t.same(limited.body, { detail: 'Concurrent session limit reached.' })
  t.equal(limited.headers.get('retry-after'), null)
  t.equal((await post(emulator, { agent: 'bare' })).status, 200, 'other characters are not limited')

  t.equal(emulator.endSession(first.body.session_id), true)
  t.equal(emulator.endSession(first.body.session_id), false, 'already ended')
  t.equal(emulator.endSession('sess_unknown'), false)
  t.match(emulator.sessions.get(first.body.session_id), { ended: true, ended_at: String })

  const second = await post(emulator, { agent: 'limited' })
  t.equal(second.status, 200, 'ending frees the slot')
  const session = emulator.sessions.get(second.body.session_id)
  if (session !== undefined) session.expiresAt = Date.now() - 1
  t.equal(emulator.activeSessions('limited'), 0)
  t.equal((await post(emulator, { agent: 'limited' })).status, 200, 'expiry frees the slot')
  t.equal(emulator.endSession(second.body.session_id), true, 'an expired session can still be ended')
})

t.test('billing session endpoint', async (t) => {
  const emulator = await start(t)
  const invalid = {
    success: false,
    message: 'Invalid API key.',
    data: null,
    errors: { detail: 'Invalid API key.' }
  }
  t.test('needs a valid key', async (t) => {
    const missing = await billing(emulator, 'sess_x', {})
    t.equal(missing.status, 401)
    t.same(missing.body, invalid)
    const wrong = await billing(emulator, 'sess_x', { 'x-api-key': 'sk_bad' })
    t.equal(wrong.status, 401)
    t.same(wrong.body, invalid)
  })

  t.test('unknown session', async (t) => {
    const res = await billing(emulator, 'sess_nope')
    t.equal(res.status, 404)
    t.match(res.body, { success: false, message: String, data: null, errors: { detail: String } })
  })

  t.test('active, ended and expired sessions', async (t) => {
    const metadata = { user_id: 'u1' }
    const active = (await post(emulator, { agent: 'support-bot', metadata, language: 'de' })).body
    const res = await billing(emulator, active.session_id)
    t.equal(res.status, 200)
    const session = emulator.sessions.get(active.session_id)
    t.same(res.body, {
      success: true,
      message: 'OK',
      data: {
        id: session?.summary_id,
        session_id: active.session_id,
        tenant_id: 'tenant_local',
        character_slug: 'support-bot',
        user: null,
        room_name: active.room_name,
        origin_url: ORIGIN,
        metadata,
        session_duration_seconds: 0,
        turn_count: 0,
        interruption_count: 0,
        llm_input_tokens: 0,
        llm_output_tokens: 0,
        llm_model: 'emulator-llm',
        llm_provider: 'emulator',
        stt_audio_seconds: 0,
        stt_provider: 'emulator',
        tts_characters: 0,
        tts_provider: 'emulator',
        estimated_cost_usd: '0.0000',
        finalized_at: null,
        recording_status: 'none',
        recording_url: null,
        recording_presigned_url: null,
        transcript: [],
        transcript_text: '',
        created_at: session?.created_at
      },
      errors: null
    })

    emulator.endSession(active.session_id)
    const ended = await answer(await fetch(`${emulator.url}/api/billing/sessions/${active.session_id}`, { headers: { 'x-api-key': 'sk_good' } }))
    t.match(ended.body.data, { finalized_at: emulator.sessions.get(active.session_id)?.ended_at, turn_count: 4 })

    const bare = (await post(emulator, { agent: 'bare' })).body
    const expiring = emulator.sessions.get(bare.session_id)
    if (expiring !== undefined) expiring.expiresAt = Date.parse(expiring.created_at) + 2000
    const expiredSoon = await billing(emulator, bare.session_id)
    t.match(expiredSoon.body.data, { finalized_at: null, metadata: {} })
    if (expiring !== undefined) expiring.expiresAt = Date.now() - 1000
    const expired = await billing(emulator, bare.session_id)
    t.match(expired.body.data, { finalized_at: new Date(expiring?.expiresAt as number).toISOString() })
  })
})

t.test('other paths and methods answer 404', async (t) => {
  const emulator = await start(t)
  for (const [method, path] of [['GET', '/'], ['GET', SESSION_PATH], ['POST', '/api/billing/sessions/sess_x/'], ['GET', '/api/billing/sessions/']]) {
    const res = await answer(await fetch(emulator.url + (path as string), { method, headers: { 'x-api-key': 'sk_good' } }))
    t.equal(res.status, 404, `${method} ${path}`)
    t.same(res.body, { detail: 'Not found.' })
  }
})

t.test('an IPv6 host is bracketed in url, so the url can be used as baseUrl', async (t) => {
  const emulator = await start(t, { host: '::1' })
  t.equal(emulator.url, `http://[::1]:${emulator.port}`)
  t.equal((await post(emulator, { agent: 'support-bot' })).status, 200)
})

t.test('fails to start on a port that is taken', async (t) => {
  const first = await start(t)
  await t.rejects(createOsharaEmulator({ characters, port: first.port }), { code: 'EADDRINUSE' })
})

t.test('close() can be called twice', async (t) => {
  const emulator = await createOsharaEmulator({ characters })
  await emulator.close()
  await emulator.close()
  t.pass()
})

t.test('verifyToken', async (t) => {
  const token = signToken({ sub: 'x' }, 'k')
  t.same(verifyToken(token, 'k'), { sub: 'x' })
  t.equal(verifyToken(`${token}x`, 'k'), null, 'altered signature')
  t.equal(verifyToken('a.b.c', 'k'), null, 'short signature')
  t.equal(verifyToken('nodots', 'k'), null)
})
