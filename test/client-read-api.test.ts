import t, { type Test } from 'tap'
import { createOsharaClient, type OsharaSessionSummary } from '../lib/index.js'
import { API_KEY, failure, ORIGIN, startEmulator } from './helpers/emulator.js'

// The typed read API: one summary, every summary across pages, form responses; reads never open the minting breaker.

const SUMMARY_FIELDS = [
  'id', 'session_id', 'tenant_id', 'character_slug', 'user', 'room_name', 'origin_url', 'metadata', 'session_duration_seconds',
  'turn_count', 'interruption_count', 'llm_input_tokens', 'llm_output_tokens', 'llm_model', 'llm_provider', 'stt_audio_seconds',
  'stt_provider', 'tts_characters', 'tts_provider', 'estimated_cost_usd', 'finalized_at', 'recording_status', 'recording_url',
  'recording_presigned_url', 'transcript', 'transcript_text', 'created_at'
]

async function setup (t: Test) {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, apiKey: API_KEY, retry: { minDelayMs: 1, maxDelayMs: 2 }, breaker: { failureThreshold: 2, cooldownMs: 60_000 } })
  t.teardown(() => client.close())
  return { emulator, client }
}

t.test('getSession resolves to the documented summary: finalized_at null while the call runs, then set', async (t) => {
  const { emulator, client } = await setup(t)
  const session = await client.createSession({ agent: 'support-bot', metadata: { user_id: 'u1' } })
  const running = await client.getSession(session.session_id)
  t.same(Object.keys(running).sort(), [...SUMMARY_FIELDS].sort())
  t.match(running, { session_id: session.session_id, character_slug: 'support-bot', finalized_at: null, metadata: { user_id: 'u1' } })
  emulator.endSession(session.session_id, { durationSeconds: 70, costUsd: '0.0583', transcript: [{ role: 'user', text: 'Hello' }] })
  const ended: OsharaSessionSummary = await client.getSession(session.session_id)
  t.match(ended, { session_duration_seconds: 70, estimated_cost_usd: '0.0583', transcript: [{ role: 'user', text: 'Hello', turn_index: 0 }] })
  t.type(ended.finalized_at, 'string')
})

t.test('a summary whose known fields have the wrong type is FST_OSHARA_BAD_RESPONSE; unknown fields are kept', async (t) => {
  const { emulator, client } = await setup(t)
  const session = await client.createSession({ agent: 'support-bot' })
  emulator.fault({ target: 'billing', status: 200, body: { success: true, data: { session_id: session.session_id, finalized_at: 5 } } })
  t.match(await failure(client.getSession(session.session_id)), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /session summary/ })
  emulator.fault({ target: 'billing', status: 200, body: { success: true, data: { session_id: session.session_id, brand_new_field: 1 } } })
  t.same(await client.getSession(session.session_id), { session_id: session.session_id, brand_new_field: 1 }, 'absent optional fields are allowed')
})

t.test('listSessions iterates every summary across pages, one page at a time, with the totals', async (t) => {
  const { emulator, client } = await setup(t)
  const minted: string[] = []
  for (let i = 0; i < 5; i++) minted.push((await client.createSession({ agent: i < 3 ? 'support-bot' : 'sales-bot' })).session_id)
  for (const id of minted) emulator.endSession(id, { durationSeconds: 60, costUsd: '0.0500' })
  emulator.clearRequests()
  const seen: string[] = []
  for await (const summary of client.listSessions({ page_size: 2 })) seen.push(summary.session_id)
  t.same(seen, minted, 'all five, in order')
  t.equal(emulator.requests.length, 3, 'pages of two: three requests')
  t.match(emulator.requests[0]?.url, /page=1&page_size=2/)

  const sales: string[] = []
  for await (const summary of client.listSessions({ character_slug: 'sales-bot', start: new Date(Date.now() - 60_000) })) sales.push(summary.session_id)
  t.same(sales, minted.slice(3))
  const list = client.listSessions({ character_slug: 'support-bot' })
  t.match(await list.totals(), { total_sessions: 3, total_stt_audio_seconds: 180, total_estimated_cost_usd: '0.1500' })
})

t.test('listSessions: the iteration reuses the first page totals() fetched; an empty list is one request', async (t) => {
  const { emulator, client } = await setup(t)
  const list = client.listSessions({ tenant_id: undefined })
  t.match(await list.totals(), { total_sessions: 0 })
  const seen = []
  for await (const summary of list) seen.push(summary)
  t.same(seen, [])
  t.equal(emulator.requests.length, 1)
})

t.test('listFormResponses iterates a character\'s form responses with filters', async (t) => {
  const { emulator, client } = await setup(t)
  const { session_id: sessionId } = await client.createSession({ agent: 'support-bot' })
  const post = async (formId: string, values: Record<string, unknown>) => fetch(`${emulator.url}/api/agents/support-bot/form-responses/`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': API_KEY }, body: JSON.stringify({ form_id: formId, session_id: sessionId, values })
  })
  t.equal((await post('lead', { email: 'a@example.com' })).status, 201)
  t.equal((await post('survey', { score: 5 })).status, 201)
  const leads = []
  for await (const response of client.listFormResponses('support-bot', { session_id: sessionId, form_id: 'lead' })) leads.push(response)
  t.match(leads, [{ form_id: 'lead', session_id: sessionId, values: { email: 'a@example.com' } }])
  t.equal(leads.length, 1)
})

t.test('reads retry safely, and a billing outage never opens the breaker that guards minting', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ target: 'billing', status: 500 }, 1)
  const session = await client.createSession({ agent: 'support-bot' })
  t.match(await client.getSession(session.session_id), { session_id: session.session_id }, 'a 500 on a read is retried')
  emulator.fault({ target: 'billing', status: 500 }, 9)
  for (let i = 0; i < 3; i++) t.match(await failure(client.getSession(session.session_id)), { code: 'FST_OSHARA_UPSTREAM_ERROR', attempts: 3 })
  t.ok(await client.createSession({ agent: 'support-bot' }), 'minting still works after 3 failed reads with failureThreshold 2')
})
