import { install } from '@sinonjs/fake-timers'
import t, { type Test } from 'tap'
import { createOsharaEmulator, type EmulatorOptions, type EmulatorSession, type OsharaEmulator } from '../lib/emulator.js'

const ORIGIN = 'https://app.example.com'
const KEY = 'sk_all'

const characters: EmulatorOptions['characters'] = [
  { slug: 'bot-a', allowed_origins: [ORIGIN], tenant_id: 'tenant_a', greeting: 'Hello from A.' },
  { slug: 'bot-b', allowed_origins: [ORIGIN], tenant_id: 'tenant_a', max_concurrent_sessions: 1 },
  { slug: 'bot-c', allowed_origins: [ORIGIN] }
]

const SUMMARY_KEYS = [
  'id', 'session_id', 'tenant_id', 'character_slug', 'user', 'room_name', 'origin_url', 'metadata',
  'session_duration_seconds', 'turn_count', 'interruption_count', 'llm_input_tokens', 'llm_output_tokens',
  'llm_model', 'llm_provider', 'stt_audio_seconds', 'stt_provider', 'tts_characters', 'tts_provider',
  'estimated_cost_usd', 'finalized_at', 'recording_status', 'recording_url', 'recording_presigned_url',
  'transcript', 'transcript_text', 'created_at'
]

const isString = (value: unknown): boolean => typeof value === 'string'
const isCount = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 0
const isIso = (value: unknown): boolean => typeof value === 'string' && new Date(value).toISOString() === value
const isTranscript = (value: unknown): boolean => Array.isArray(value) && value.every((entry) =>
  Object.keys(entry).sort().join() === 'role,text,ts,turn_index' && ['user', 'assistant'].includes(entry.role) &&
  isString(entry.text) && isCount(entry.turn_index) && typeof entry.ts === 'number')

/** The documented type of each summary field. */
const FIELD_TYPES: Record<string, (value: unknown) => boolean> = {
  id: (value) => Number.isInteger(value) && (value as number) > 0,
  session_id: isString,
  tenant_id: isString,
  character_slug: isString,
  user: (value) => value === null,
  room_name: isString,
  origin_url: isString,
  metadata: (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
  session_duration_seconds: (value) => typeof value === 'number',
  turn_count: isCount,
  interruption_count: isCount,
  llm_input_tokens: isCount,
  llm_output_tokens: isCount,
  llm_model: isString,
  llm_provider: isString,
  stt_audio_seconds: (value) => typeof value === 'number',
  stt_provider: isString,
  tts_characters: isCount,
  tts_provider: isString,
  estimated_cost_usd: (value) => /^\d+\.\d{4}$/.test(value as string),
  finalized_at: (value) => value === null || isIso(value),
  recording_status: isString,
  recording_url: (value) => value === null || isString(value),
  recording_presigned_url: (value) => value === null || isString(value),
  transcript: isTranscript,
  transcript_text: isString,
  created_at: isIso
}

function checkShape (t: Test, summary: Record<string, unknown>): void {
  t.same(Object.keys(summary).sort(), [...SUMMARY_KEYS].sort(), 'exactly the documented keys')
  for (const key of SUMMARY_KEYS) t.ok(FIELD_TYPES[key]?.(summary[key]), `${key} has its documented type`)
}

async function start (t: Test, options: Partial<EmulatorOptions> = {}): Promise<OsharaEmulator> {
  const emulator = await createOsharaEmulator({ characters, apiKeys: [KEY], ...options })
  t.teardown(() => emulator.close())
  return emulator
}

interface Answer {
  status: number
  body: any
}

async function call (url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init)
  return { status: res.status, body: await res.json() }
}

/** `key` null sends no `X-API-Key`. */
function get (emulator: OsharaEmulator, path: string, key: string | null = KEY): Promise<Answer> {
  return call(emulator.url + path, { headers: key === null ? {} : { 'x-api-key': key } })
}

function post (emulator: OsharaEmulator, path: string, body: unknown, key: string | null = KEY): Promise<Answer> {
  return call(emulator.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { 'x-api-key': key }) },
    body: typeof body === 'string' ? body : JSON.stringify(body)
  })
}

/** Mints a session of `agent`; resolves to its record in the emulator. */
async function mint (emulator: OsharaEmulator, agent: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<EmulatorSession> {
  const res = await call(`${emulator.url}/api/agents/agent-session/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: ORIGIN, ...headers },
    body: JSON.stringify({ agent, ...body })
  })
  if (res.status !== 200) throw new Error(`mint answered ${res.status}`)
  return emulator.sessions.get(res.body.session_id) as EmulatorSession
}

async function summary (emulator: OsharaEmulator, sessionId: string, key = KEY): Promise<any> {
  const res = await get(emulator, `/api/billing/sessions/${sessionId}/`, key)
  if (res.status !== 200) throw new Error(`summary answered ${res.status}`)
  return res.body.data
}

t.test('a summary has exactly the documented keys, while the call runs and once finalized', async (t) => {
  const emulator = await start(t)
  const session = await mint(emulator, 'bot-a', { metadata: { user_id: 'u1' }, origin_url: 'https://app.example.com/pricing' })

  const running = await summary(emulator, session.session_id)
  checkShape(t, running)
  t.same(running, {
    id: session.summary_id,
    session_id: session.session_id,
    tenant_id: 'tenant_a',
    character_slug: 'bot-a',
    user: null,
    room_name: session.room_name,
    origin_url: 'https://app.example.com/pricing',
    metadata: { user_id: 'u1' },
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
    created_at: session.created_at
  }, 'zero figures until finalized')

  t.equal(emulator.endSession(session.session_id), true)
  t.match(session, { ended: true, ended_at: String, end_reason: 'client_left' })
  const finalized = await summary(emulator, session.session_id)
  checkShape(t, finalized)
  t.equal(finalized.finalized_at, session.ended_at, 'finalized when the call ended (finalizeDelayMs 0)')
  t.equal(finalized.id, session.summary_id, 'the same summary')
  t.equal(finalized.session_duration_seconds, 0, 'the real elapsed time, in whole seconds')
  t.equal(finalized.estimated_cost_usd, '0.0000')
  t.same(finalized.transcript.map(({ role, text }: any) => ({ role, text })), [
    { role: 'assistant', text: 'Hello from A.' },
    { role: 'user', text: 'Hi! What are your opening hours?' },
    { role: 'assistant', text: 'We are open from nine to five, Monday to Friday.' },
    { role: 'user', text: 'Great, thank you. Goodbye!' }
  ], 'a default transcript opening with the greeting')
  t.same(finalized.transcript.map(({ turn_index: index }: any) => index), [0, 1, 2, 3])
  t.equal(finalized.transcript_text, finalized.transcript.map(({ role, text }: any) => `${role}: ${text}`).join('\n'))
  t.match(finalized, { turn_count: 4, interruption_count: 0, llm_input_tokens: 8 + 7, llm_output_tokens: 4 + 12, tts_characters: 13 + 48 })
})

t.test('endSession with explicit duration, transcript, cost and reason', async (t) => {
  const emulator = await start(t)
  const session = await mint(emulator, 'bot-c')
  const transcript = [
    { role: 'user' as const, text: 'I want to cancel.' },
    { role: 'assistant' as const, text: 'Done: your plan ends today.' }
  ]
  t.equal(emulator.endSession(session.session_id, { durationSeconds: 125, transcript, costUsd: '0.1234', reason: 'agent_hangup' }), true)
  t.equal(session.end_reason, 'agent_hangup')
  t.match(await summary(emulator, session.session_id), {
    session_duration_seconds: 125,
    stt_audio_seconds: 125,
    estimated_cost_usd: '0.1234',
    turn_count: 2,
    llm_input_tokens: 5,
    llm_output_tokens: 7,
    tts_characters: 27,
    transcript: [
      { role: 'user', text: 'I want to cancel.', turn_index: 0, ts: 0 },
      { role: 'assistant', text: 'Done: your plan ends today.', turn_index: 1, ts: 62.5 }
    ],
    transcript_text: 'user: I want to cancel.\nassistant: Done: your plan ends today.'
  })
  t.equal(emulator.endSession(session.session_id, { durationSeconds: 1 }), false, 'already ended: nothing changes')
  t.equal((await summary(emulator, session.session_id)).session_duration_seconds, 125)

  const costs: Array<[number | string, string]> = [[0.5, '0.5000'], ['1.23456', '1.2346'], ['12', '12.0000'], [0, '0.0000']]
  for (const [costUsd, shown] of costs) {
    const other = await mint(emulator, 'bot-c')
    emulator.endSession(other.session_id, { costUsd, transcript: [] })
    t.match(await summary(emulator, other.session_id), { estimated_cost_usd: shown, transcript: [], transcript_text: '', turn_count: 0 }, String(costUsd))
  }
})

t.test('default duration, transcript and cost', async (t) => {
  t.test('the real elapsed time at $0.05 a minute', async (t) => {
    const emulator = await start(t)
    const session = await mint(emulator, 'bot-c')
    session.created_at = new Date(Date.now() - 120_000).toISOString()
    emulator.endSession(session.session_id)
    const ended = await summary(emulator, session.session_id)
    t.match(ended, { session_duration_seconds: 120, estimated_cost_usd: '0.1000' })
    t.equal(ended.transcript[0].text, 'Hello! How can I help you today?', 'without a greeting')
    t.equal(ended.transcript[3].ts, 90, 'turns spread over the call, in seconds since it started')

    const given = await mint(emulator, 'bot-c', { greeting: 'Bonjour !' })
    emulator.endSession(given.session_id, { durationSeconds: 90 })
    t.match(await summary(emulator, given.session_id), { session_duration_seconds: 90, estimated_cost_usd: '0.0750', transcript: [{ text: 'Bonjour !' }] })
  })

  t.test('costPerMinuteUsd', async (t) => {
    const emulator = await start(t, { costPerMinuteUsd: 0.12 })
    const session = await mint(emulator, 'bot-c')
    emulator.endSession(session.session_id, { durationSeconds: 30 })
    t.equal((await summary(emulator, session.session_id)).estimated_cost_usd, '0.0600')
  })
})

t.test('end options are validated', async (t) => {
  const emulator = await start(t)
  const session = await mint(emulator, 'bot-c')
  const cases: Array<[unknown, RegExp]> = [
    [[], /JSON object/],
    [null, /JSON object/],
    [{ durationSeconds: -1 }, /^durationSeconds/],
    [{ durationSeconds: '5' }, /^durationSeconds/],
    [{ transcript: 'hi' }, /^transcript/],
    [{ transcript: [1] }, /^transcript/],
    [{ transcript: [{ role: 'system', text: 'x' }] }, /^transcript/],
    [{ transcript: [{ role: 'user', text: 1 }] }, /^transcript/],
    [{ costUsd: -1 }, /^costUsd/],
    [{ costUsd: '1e3' }, /^costUsd/],
    [{ costUsd: '-1' }, /^costUsd/],
    [{ costUsd: true }, /^costUsd/],
    [{ reason: '' }, /^reason/],
    [{ reason: 5 }, /^reason/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => emulator.endSession(session.session_id, options as any), { name: 'TypeError', message }, JSON.stringify(options))
    const res = await post(emulator, `/_emulator/sessions/${session.session_id}/end`, JSON.stringify(options))
    t.equal(res.status, 400, JSON.stringify(options))
    t.match(res.body, { detail: message })
  }
  t.throws(() => emulator.endSession(session.session_id, { durationSeconds: Infinity }), TypeError)
  t.throws(() => emulator.endSession(session.session_id, { durationSeconds: Number.NaN }), TypeError)
  t.match((await post(emulator, `/_emulator/sessions/${session.session_id}/end`, 'not json')).body, { detail: /JSON object/ })
  t.equal(session.ended, false, 'invalid options end nothing')
})

t.test('POST /_emulator/sessions/{id}/end ends a call over HTTP', async (t) => {
  const emulator = await start(t)
  const first = await mint(emulator, 'bot-b')
  await t.rejects(mint(emulator, 'bot-b'), /429/, 'bot-b allows one call at a time')

  const ended = await post(emulator, `/_emulator/sessions/${first.session_id}/end`, '', null)
  t.same(ended, { status: 200, body: { session_id: first.session_id, ended_at: first.ended_at, end_reason: 'client_left' } })
  t.equal(emulator.activeSessions('bot-b'), 0, 'ending frees the slot')
  const second = await mint(emulator, 'bot-b')

  const options = { durationSeconds: 42, costUsd: 0.021, reason: 'tab_crashed', transcript: [{ role: 'user', text: 'Hello?' }] }
  const withOptions = await post(emulator, `/_emulator/sessions/${second.session_id}/end`, options)
  t.match(withOptions, { status: 200, body: { end_reason: 'tab_crashed' } })
  t.match(await summary(emulator, second.session_id), { session_duration_seconds: 42, estimated_cost_usd: '0.0210', transcript: [{ text: 'Hello?' }] })

  const again = await post(emulator, `/_emulator/sessions/${second.session_id}/end/`, {})
  t.same(again, { status: 409, body: { detail: 'Session already ended.' } })
  t.same(await post(emulator, '/_emulator/sessions/sess_nope/end', {}), { status: 404, body: { detail: 'Session not found.' } })
})

t.test('a call whose token expires is finalized at its expiry', async (t) => {
  const emulator = await start(t)
  const session = await mint(emulator, 'bot-c')
  const created = Date.now() - 20 * 60_000
  session.created_at = new Date(created).toISOString()
  session.expiresAt = created + 10 * 60_000
  const expiry = new Date(session.expiresAt).toISOString()

  t.match(await summary(emulator, session.session_id), {
    finalized_at: expiry,
    session_duration_seconds: 600,
    estimated_cost_usd: '0.5000',
    turn_count: 4
  })
  t.equal(session.ended, false, 'the record is left as it is')
  t.equal(emulator.activeSessions(), 0)

  t.equal(emulator.endSession(session.session_id, { transcript: [{ role: 'assistant', text: 'Bye.' }], reason: 'agent_hangup' }), true)
  t.equal(session.ended_at, expiry, 'the end stays the expiry')
  t.match(await summary(emulator, session.session_id), {
    finalized_at: expiry,
    session_duration_seconds: 600,
    transcript: [{ text: 'Bye.' }],
    turn_count: 1
  }, 'the given details replace the generated ones')
})

t.test('finalizeDelayMs: ended, then finalized later', async (t) => {
  // The emulator's clock is Date.now(): faked, so the delay passes when the test says.
  const clock = install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const delay = 60_000
  const emulator = await start(t, { finalizeDelayMs: delay })
  const session = await mint(emulator, 'bot-b')
  emulator.endSession(session.session_id, { durationSeconds: 61 })
  t.equal(emulator.activeSessions('bot-b'), 0, 'the slot is free at once')
  t.match(await summary(emulator, session.session_id), {
    finalized_at: null,
    session_duration_seconds: 0,
    estimated_cost_usd: '0.0000',
    transcript: []
  }, 'ended but not yet finalized')
  clock.tick(delay - 1)
  t.equal((await summary(emulator, session.session_id)).finalized_at, null, 'not before the delay')
  clock.tick(1)
  const finalized = await summary(emulator, session.session_id)
  t.equal(Date.parse(finalized.finalized_at) - Date.parse(session.ended_at as string), delay)
  t.match(finalized, { session_duration_seconds: 61, estimated_cost_usd: '0.0508' })
})

t.test('GET /api/billing/usage/', async (t) => {
  const emulator = await start(t)
  const at = (iso: string) => async (agent: string): Promise<EmulatorSession> => {
    const session = await mint(emulator, agent)
    session.created_at = iso
    return session
  }
  const s1 = await at('2026-03-01T10:00:00.000Z')('bot-a')
  const s2 = await at('2026-03-01T09:00:00.000Z')('bot-b')
  const s3 = await at('2026-03-02T00:00:00.000Z')('bot-c')
  const s4 = await at('2026-03-02T00:00:00.000Z')('bot-a')
  const s5 = await at('2026-03-03T00:00:00.000Z')('bot-c')
  emulator.endSession(s1.session_id, { durationSeconds: 60, costUsd: '0.05' })
  emulator.endSession(s2.session_id, { durationSeconds: 120, costUsd: 0.1 })
  emulator.endSession(s4.session_id, { durationSeconds: 30 })
  emulator.endSession(s5.session_id, { durationSeconds: 10, costUsd: '0.3333', transcript: [{ role: 'assistant', text: 'Hi there' }] })
  const ids = (answer: Answer): string[] => answer.body.data.sessions.data.map((result: any) => result.session_id)
  const page = (n: number, size: number, query = ''): Promise<Answer> => get(emulator, `/api/billing/usage/?${query}page=${n}&page_size=${size}`)

  t.test('pages in created_at order, the totals over every page at the top of data, and only documented keys', async (t) => {
    const first = await page(1, 2)
    t.equal(first.status, 200)
    t.match(first.body, { success: true, message: 'OK', errors: null })
    t.same(Object.keys(first.body.data), [
      'total_sessions', 'total_llm_input_tokens', 'total_llm_output_tokens', 'total_stt_audio_seconds', 'total_tts_characters', 'total_estimated_cost_usd', 'sessions'
    ])
    t.same(Object.keys(first.body.data.sessions), ['data'], 'no pagination keys: Oshara documents none')
    checkShape(t, first.body.data.sessions.data[0])
    const pages = [first, await page(2, 2), await page(3, 2)]
    t.same(pages.map(ids), [[s2, s1], [s3, s4], [s5]].map((sessions) => sessions.map((session) => session.session_id)), 'ascending, ties in minting order')
    const summaries = pages.flatMap((answer) => answer.body.data.sessions.data)
    const sum = (field: string): number => summaries.reduce((total, item) => total + item[field], 0)
    const totals = {
      total_sessions: 5,
      total_llm_input_tokens: sum('llm_input_tokens'),
      total_llm_output_tokens: sum('llm_output_tokens'),
      total_stt_audio_seconds: 220,
      total_tts_characters: sum('tts_characters'),
      total_estimated_cost_usd: '0.5083'
    }
    t.ok(totals.total_tts_characters > 0)
    for (const answer of pages) {
      const { sessions: _, ...pageTotals } = answer.body.data
      t.same(pageTotals, totals, 'the same totals on every page')
    }
  })

  t.test('filters; start and end bound created_at inclusively', async (t) => {
    const cases: Array<[string, EmulatorSession[]]> = [
      ['character_slug=bot-a', [s1, s4]],
      ['tenant_id=tenant_a', [s2, s1, s4]],
      ['tenant_id=tenant_local', [s3, s5]],
      ['start=2026-03-02T00:00:00Z', [s3, s4, s5]],
      ['end=2026-03-02T00:00:00Z', [s2, s1, s3, s4]],
      ['start=2026-03-01T10:00:00Z&end=2026-03-03T00:00:00Z&character_slug=bot-a', [s1, s4]],
      ['character_slug=nobody', []]
    ]
    for (const [query, expected] of cases) {
      const res = await get(emulator, `/api/billing/usage?${query}`)
      t.same(ids(res), expected.map((session) => session.session_id), query)
      t.equal(res.body.data.total_sessions, expected.length, query)
    }
    t.match((await get(emulator, '/api/billing/usage/?character_slug=bot-c')).body.data, {
      total_sessions: 2, total_stt_audio_seconds: 10, total_estimated_cost_usd: '0.3333', total_llm_input_tokens: 0, total_llm_output_tokens: 2, total_tts_characters: 8
    })
  })

  t.test('bad parameters', async (t) => {
    const cases: Array<[string, number, RegExp]> = [
      ['page_size=201', 400, /^page_size/],
      ['page_size=0', 400, /^page_size/],
      ['page_size=ten', 400, /^page_size/],
      ['page=0', 400, /^page:/],
      ['page=-1', 400, /^page:/],
      ['page=2', 404, /^Invalid page/],
      ['page_size=2&page=4', 404, /^Invalid page/],
      ['start=yesterday', 400, /^start/],
      ['end=2026-13-45', 400, /^end/]
    ]
    for (const [query, status, message] of cases) {
      const res = await get(emulator, `/api/billing/usage/?${query}`)
      t.equal(res.status, status, query)
      t.match(res.body, { success: false, message, data: null, errors: { detail: message } }, query)
    }
    t.equal((await get(emulator, '/api/billing/usage/?page_size=200')).status, 200)
    t.match((await get(emulator, '/api/billing/usage/?character_slug=nobody&page=1')).body.data, { total_sessions: 0, sessions: { data: [] } }, 'an empty list has a page 1')
  })

  t.test('pages hold 50 by default', async (t) => {
    for (let i = 0; i < 46; i++) await mint(emulator, 'bot-c')
    const res = await get(emulator, '/api/billing/usage/')
    t.equal(res.body.data.total_sessions, 51)
    t.equal(res.body.data.sessions.data.length, 50)
    t.equal((await get(emulator, '/api/billing/usage/?page=2')).body.data.sessions.data.length, 1)
  })

  t.test('needs a valid key', async (t) => {
    for (const key of [null, 'sk_bad']) {
      t.same(await get(emulator, '/api/billing/usage/', key), {
        status: 401,
        body: { success: false, message: 'Invalid API key.', data: null, errors: { detail: 'Invalid API key.' } }
      })
    }
  })
})

t.test('form responses', async (t) => {
  const emulator = await start(t)
  const a1 = await mint(emulator, 'bot-a')
  const a2 = await mint(emulator, 'bot-a')
  const b1 = await mint(emulator, 'bot-b')
  const path = '/api/agents/bot-a/form-responses/'

  const created = await post(emulator, path, { form_id: 'lead', session_id: a1.session_id, values: { email: 'ada@example.com' } })
  t.equal(created.status, 201)
  t.match(created.body, { success: true, message: 'Created', errors: null })
  t.same(Object.keys(created.body.data), ['id', 'form_id', 'session_id', 'values', 'created_at'])
  t.match(created.body.data, { id: 1, form_id: 'lead', session_id: a1.session_id, values: { email: 'ada@example.com' } })
  t.ok(isIso(created.body.data.created_at))
  const nps = (await post(emulator, path.slice(0, -1), { form_id: 'nps', session_id: a1.session_id, values: { score: 9 } })).body.data
  const lead2 = (await post(emulator, path, { form_id: 'lead', session_id: a2.session_id, values: {} })).body.data

  const list = await get(emulator, path)
  t.equal(list.status, 200)
  t.same(list.body, [created.body.data, nps, lead2], 'a bare array: not wrapped, not paginated')
  t.same([nps.id, lead2.id], [2, 3], 'row numbers')
  const cases: Array<[string, unknown[]]> = [
    [`session_id=${a1.session_id}`, [created.body.data, nps]],
    ['form_id=lead', [created.body.data, lead2]],
    [`form_id=lead&session_id=${a2.session_id}`, [lead2]],
    ['form_id=nope', []]
  ]
  for (const [query, expected] of cases) t.same((await get(emulator, `${path}?${query}`)).body, expected, query)
  t.same((await get(emulator, `${path}?page_size=1&page=2`)).body, [created.body.data, nps, lead2], 'paging parameters are not documented: ignored')
  t.same((await get(emulator, '/api/agents/bot-b/form-responses/')).body, [], 'per character')

  t.test('refused', async (t) => {
    const refused: Array<[string, unknown, number, RegExp]> = [
      [path, 'not json', 400, /JSON object/],
      [path, [], 400, /JSON object/],
      [path, { session_id: a1.session_id, values: {} }, 400, /^form_id/],
      [path, { form_id: '', session_id: a1.session_id, values: {} }, 400, /^form_id/],
      [path, { form_id: 'x', values: {} }, 400, /^session_id/],
      [path, { form_id: 'x', session_id: '', values: {} }, 400, /^session_id/],
      [path, { form_id: 'x', session_id: a1.session_id }, 400, /^values/],
      [path, { form_id: 'x', session_id: a1.session_id, values: [] }, 400, /^values/],
      [path, { form_id: 'x', session_id: b1.session_id, values: {} }, 404, /^Session not found/],
      [path, { form_id: 'x', session_id: 'sess_nope', values: {} }, 404, /^Session not found/],
      ['/api/agents/nobody/form-responses/', { form_id: 'x', session_id: a1.session_id, values: {} }, 404, /^Agent not found/]
    ]
    for (const [to, body, status, message] of refused) {
      const res = await post(emulator, to, body)
      t.equal(res.status, status, JSON.stringify(body))
      t.match(res.body, { success: false, message, data: null, errors: { detail: message } }, JSON.stringify(body))
    }
    t.match(await get(emulator, '/api/agents/nobody/form-responses/'), { status: 404, body: { message: 'Agent not found.' } })
    t.match(await get(emulator, path, null), { status: 401, body: { message: 'Invalid API key.' } })
    t.match(await post(emulator, path, { form_id: 'x', session_id: a1.session_id, values: {} }, 'sk_bad'), { status: 401 })
    t.equal((await get(emulator, path)).body.length, 3, 'nothing refused was recorded')
  })
})

t.test('API keys scoped to a tenant or to characters', async (t) => {
  const emulator = await start(t, {
    apiKeys: [
      KEY,
      { key: 'sk_tenant_a', tenant_id: 'tenant_a' },
      { key: 'sk_only_c', characters: ['bot-c'] },
      { key: 'sk_a_and_c', tenant_id: 'tenant_a', characters: ['bot-b', 'bot-c'] }
    ]
  })
  const a = await mint(emulator, 'bot-a')
  const b = await mint(emulator, 'bot-b', {}, { 'x-api-key': 'sk_only_c' })
  const c = await mint(emulator, 'bot-c')
  t.pass('a scoped key still mints sessions of any character')
  for (const session of [a, b, c]) {
    await post(emulator, `/api/agents/${session.character_slug}/form-responses/`, { form_id: 'f', session_id: session.session_id, values: {} })
  }
  const notFound = (await get(emulator, '/api/billing/sessions/sess_nope/')).body

  const visible: Record<string, EmulatorSession[]> = {
    [KEY]: [a, b, c],
    sk_tenant_a: [a, b],
    sk_only_c: [c],
    sk_a_and_c: [b]
  }
  for (const [key, sessions] of Object.entries(visible)) {
    for (const session of [a, b, c]) {
      const res = await get(emulator, `/api/billing/sessions/${session.session_id}/`, key)
      const seen = sessions.includes(session)
      t.equal(res.status, seen ? 200 : 404, `${key} reads ${session.character_slug}`)
      if (!seen) t.same(res.body, notFound, 'the same answer as an unknown session')

      const forms = await get(emulator, `/api/agents/${session.character_slug}/form-responses/`, key)
      t.equal(forms.status, seen ? 200 : 403, `${key} lists form responses of ${session.character_slug} (only the character's creator)`)
      const recorded = await post(emulator, `/api/agents/${session.character_slug}/form-responses/`, { form_id: 'g', session_id: session.session_id, values: {} }, key)
      t.equal(recorded.status, seen ? 201 : 403, `${key} records a form response of ${session.character_slug}`)
    }
    const usage = await get(emulator, '/api/billing/usage/', key)
    t.same(usage.body.data.sessions.data.map((result: any) => result.session_id), sessions.map((session) => session.session_id), `${key} lists only what it reads`)
    t.equal(usage.body.data.total_sessions, sessions.length)
  }
  t.match(await get(emulator, '/api/agents/bot-a/form-responses/', 'sk_only_c'), { status: 403, body: { detail: 'You do not have permission to perform this action.' } })
})

t.test('faults on the billing endpoints', async (t) => {
  const emulator = await start(t)
  const session = await mint(emulator, 'bot-c')
  const summaryPath = `/api/billing/sessions/${session.session_id}/`

  t.test('a target takes only its own requests, in queue order', async (t) => {
    emulator.fault({ status: 503 })
    emulator.fault({ target: 'billing', status: 500 })
    const failed = await get(emulator, summaryPath)
    t.same(failed, { status: 500, body: { detail: 'Injected fault' } })
    t.match(emulator.requests.at(-1), { fault: { target: 'billing', status: 500 }, status: 500 })
    t.equal((await get(emulator, summaryPath)).status, 200, 'once')
    await t.rejects(mint(emulator, 'bot-c'), /503/, 'the session fault was still queued')
  })

  t.test('usage: latency, then the normal answer; times', async (t) => {
    emulator.fault({ target: 'usage', delayMs: 100 })
    const started = Date.now()
    const slow = await get(emulator, '/api/billing/usage/')
    t.ok(Date.now() - started >= 90, 'waited')
    t.equal(slow.status, 200)
    emulator.fault({ target: 'usage', status: 502 }, 2)
    t.same([(await get(emulator, '/api/billing/usage/')).status, (await get(emulator, '/api/billing/usage/')).status, (await get(emulator, '/api/billing/usage/')).status], [502, 502, 200])
  })

  t.test('form responses: a 401 on the list, never on recording one', async (t) => {
    const body = { success: false, message: 'Invalid API key.', data: null, errors: { detail: 'Invalid API key.' } }
    emulator.fault({ target: 'form-responses', status: 401, body })
    const recorded = await post(emulator, '/api/agents/bot-c/form-responses/', { form_id: 'f', session_id: session.session_id, values: {} })
    t.equal(recorded.status, 201)
    t.same(await get(emulator, '/api/agents/bot-c/form-responses/'), { status: 401, body })
    t.equal((await post(emulator, `/_emulator/sessions/${session.session_id}/end`, {})).status, 200, 'the control endpoint takes no faults')
  })

  t.test('reset, malformed and slow bodies', async (t) => {
    emulator.fault({ target: 'billing', reset: true })
    await t.rejects(fetch(emulator.url + summaryPath, { headers: { 'x-api-key': KEY } }))
    emulator.fault({ target: 'billing', malformed: true })
    const malformed = await fetch(emulator.url + summaryPath, { headers: { 'x-api-key': KEY } })
    t.equal(malformed.status, 200)
    await t.rejects(malformed.json())
    emulator.fault({ target: 'billing', slowBodyMs: 50 })
    t.match(await summary(emulator, session.session_id), { session_id: session.session_id, finalized_at: String })
  })
})
