import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { request } from 'undici'
import { createOsharaClient, type OsharaSessionSummary } from '../lib/index.js'
import type { OsharaEmulator } from '../lib/emulator.js'
import { API_KEY, failure, ORIGIN, startEmulator } from './helpers/emulator.js'

// Oshara's documented answers (test/fixtures/oshara-api/, copied from the JSON blocks of its API
// reference as OSHARA-API.md records them) are the contract: the client reads each one as sent,
// and the emulator answers the same requests with the same keys and JSON types at every path.

function fixture<T = unknown> (name: string): T {
  return JSON.parse(readFileSync(new URL(`fixtures/oshara-api/${name}`, import.meta.url), 'utf8')) as T
}

interface Envelope<T> { success: boolean, message: string, data: T, errors: null }
type Usage = Record<string, unknown> & { total_sessions: number, sessions: { data: OsharaSessionSummary[] } }

const SUMMARY = fixture<Envelope<OsharaSessionSummary>>('session-summary.json')
const USAGE = fixture<Envelope<Usage>>('usage.json')
const FORM_RESPONSES = fixture<Array<Record<string, unknown>>>('form-responses.json')

/** Paths where the documentation allows null besides the type the fixture shows. */
const NULLABLE = [/^data\.(sessions\.data\[\]\.)?(user|recording_status|recording_url|recording_presigned_url|finalized_at)$/]

/**
 * Every path of `value` with its JSON type (`string`, `number`, `boolean`, `null`, `object`, `array`);
 * array items under `path[]`, each item's shape merged.
 */
function shape (value: unknown, path = '', into = new Map<string, string>()): Map<string, string> {
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value
  into.set(path, type)
  if (Array.isArray(value)) for (const item of value) shape(item, `${path}[]`, into)
  else if (type === 'object') for (const [key, item] of Object.entries(value as object)) shape(item, path === '' ? key : `${path}.${key}`, into)
  return into
}

/** Asserts that `answer` has exactly the keys of `documented` with the same JSON type at every path (null where documented). */
function sameShape (t: Test, answer: unknown, documented: unknown, what: string): void {
  const expected = shape(documented)
  const actual = shape(answer)
  t.same([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: the same keys at every path`)
  for (const [path, type] of expected) {
    const got = actual.get(path)
    if (got === type || (got === 'null' && NULLABLE.some((pattern) => pattern.test(path)))) continue
    t.fail(`${what}: ${path} is ${got ?? 'missing'}, documented as ${type}`)
  }
}

async function setup (t: Test) {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, apiKey: API_KEY, retry: false })
  t.teardown(() => client.close())
  return { emulator, client }
}

/** Every item an async iterable yields. */
async function collect<T> (items: AsyncIterable<T>): Promise<T[]> {
  const seen: T[] = []
  for await (const item of items) seen.push(item)
  return seen
}

async function get (emulator: OsharaEmulator, path: string, headers: Record<string, string> = { 'x-api-key': API_KEY }): Promise<{ status: number, body: unknown }> {
  const response = await request(`${emulator.url}${path}`, { headers })
  return { status: response.statusCode, body: await response.body.json() }
}

t.test('the client reads the documented session summary as sent: numeric transcript ts and id, decimal-string cost', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ target: 'billing', status: 200, body: SUMMARY })
  const summary = await client.getSession(SUMMARY.data.session_id)
  t.same(summary, SUMMARY.data, 'every value kept as sent')
  t.equal(typeof summary.transcript?.[0]?.ts, 'number')
  t.equal(typeof summary.id, 'number')
  t.equal(summary.estimated_cost_usd, '0.008310')
})

t.test('the client reads the documented usage list: summaries from data.sessions.data, totals() the total_* fields as sent', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ target: 'usage', status: 200, body: USAGE })
  const list = client.listSessions({ page_size: 1 })
  const seen: OsharaSessionSummary[] = []
  for await (const summary of list) seen.push(summary)
  t.same(seen, USAGE.data.sessions.data)
  t.same(await list.totals(), {
    total_sessions: 2,
    total_llm_input_tokens: 3010,
    total_llm_output_tokens: 611,
    total_stt_audio_seconds: 60.5,
    total_tts_characters: 1090,
    total_estimated_cost_usd: '0.011920'
  }, 'the cost stays a decimal string; the first page is read once')
  const usageRequests = emulator.requests.filter((r) => r.url.startsWith('/api/billing/usage/'))
  t.equal(usageRequests.length, 2, 'total_sessions 2 with page_size 1: pages 1 and 2 (the emulator answered page 2 itself)')
})

t.test('the client reads the documented form responses: a bare JSON array, one request, no paging parameters', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ target: 'form-responses', status: 200, body: FORM_RESPONSES })
  const seen: unknown[] = []
  for await (const item of client.listFormResponses('support-bot', { session_id: 'sess_1' })) seen.push(item)
  t.same(seen, FORM_RESPONSES)
  const requests = emulator.requests.filter((r) => r.url.includes('/form-responses/'))
  t.same(requests.map((r) => r.url), ['/api/agents/support-bot/form-responses/?session_id=sess_1'])
})

t.test('the emulator answers each documented request with the documented keys and JSON types', async (t) => {
  const { emulator, client } = await setup(t)
  const session = await client.createSession({ agent: 'support-bot', metadata: { user_id: 'u_88', plan: 'team' } })
  emulator.endSession(session.session_id, { durationSeconds: 96.4, costUsd: '0.0083', transcript: [{ role: 'assistant', text: 'Hello.' }, { role: 'user', text: 'Hi.' }] })

  const summary = await get(emulator, `/api/billing/sessions/${session.session_id}/`)
  t.equal(summary.status, 200)
  sameShape(t, summary.body, SUMMARY, 'GET /api/billing/sessions/{id}/')

  const usage = await get(emulator, '/api/billing/usage/?character_slug=support-bot')
  t.equal(usage.status, 200)
  sameShape(t, usage.body, USAGE, 'GET /api/billing/usage/')

  const posted = await request(`${emulator.url}/api/agents/support-bot/form-responses/`, {
    method: 'POST',
    headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ form_id: 'reschedule', session_id: session.session_id, values: { name: 'Dana', new_date: '2026-12-08' } })
  })
  t.equal(posted.statusCode, 201, 'POST answers 201')
  await posted.body.dump()
  const forms = await get(emulator, `/api/agents/support-bot/form-responses/?session_id=${session.session_id}`)
  t.equal(forms.status, 200)
  sameShape(t, forms.body, FORM_RESPONSES, 'GET /api/agents/{slug}/form-responses/')
})

t.test('the emulator\'s usage list: totals over every page, a 404 past the last page, end inclusive', async (t) => {
  const { emulator, client } = await setup(t)
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push((await client.createSession({ agent: 'support-bot' })).session_id)
  for (const id of ids) emulator.endSession(id, { durationSeconds: 60, costUsd: '0.0500' })
  const page2 = await get(emulator, '/api/billing/usage/?page=2&page_size=2')
  t.match(page2.body, { success: true, data: { total_sessions: 3, total_estimated_cost_usd: '0.1500', sessions: { data: [{ session_id: ids[2] }] } } })
  t.same(Object.keys((page2.body as Envelope<Usage>).data.sessions), ['data'], 'no undocumented pagination keys')
  t.match(await get(emulator, '/api/billing/usage/?page=3&page_size=2'), { status: 404, body: { success: false, data: null, errors: { detail: 'Invalid page.' } } })
  t.match(await get(emulator, '/api/billing/usage/?page=x'), { status: 400, body: { errors: { detail: /page/ } } })
  t.match(await get(emulator, '/api/billing/usage/?page_size=201'), { status: 400, body: { errors: { detail: /page_size/ } } })
  const created = emulator.sessions.get(ids[0] as string)?.created_at as string
  const bounded = await get(emulator, `/api/billing/usage/?start=${created}&end=${created}`)
  t.ok((bounded.body as Envelope<Usage>).data.sessions.data.some((item) => item.session_id === ids[0]), 'end bounds created_at inclusively')
})

t.test('listSessions walks pages from total_sessions and page_size only: stops at a short page, and at a 404 past the end', async (t) => {
  const { emulator, client } = await setup(t)
  const ids: string[] = []
  for (let i = 0; i < 4; i++) ids.push((await client.createSession({ agent: 'support-bot' })).session_id)
  emulator.clearRequests()
  const seen: string[] = []
  for await (const summary of client.listSessions({ page_size: 2 })) seen.push(summary.session_id)
  t.same(seen, ids)
  t.equal(emulator.requests.length, 2, 'four sessions in pages of two: two requests, none past the end')

  emulator.clearRequests()
  // The first page says 5 (one session more than the list now holds): page 3 answers 404, which ends the list.
  emulator.fault({ target: 'usage', status: 200, body: { success: true, data: { total_sessions: 5, sessions: { data: [] } } } })
  const none: string[] = []
  for await (const summary of client.listSessions({ page_size: 2 })) none.push(summary.session_id)
  t.same(none, [], 'an empty first page ends the list')
  t.equal(emulator.requests.length, 1)

  emulator.clearRequests()
  const firstPage = (await get(emulator, '/api/billing/usage/?page=1&page_size=2')).body as Envelope<Usage>
  emulator.clearRequests()
  emulator.fault({ target: 'usage', status: 200, body: { ...firstPage, data: { ...firstPage.data, total_sessions: 6 } } })
  const walked: string[] = []
  for await (const summary of client.listSessions({ page_size: 2 })) walked.push(summary.session_id)
  t.same(walked, ids, 'pages 1 and 2, then page 3 answers 404: the end')
  t.equal(emulator.requests.length, 3)
  t.equal(emulator.requests[2]?.status, 404)

  // Any other failure of a later page is the caller's to see.
  emulator.fault({ target: 'usage', status: 200, body: firstPage })
  emulator.fault({ target: 'usage', status: 401, body: { detail: 'Invalid API key.' } })
  const partial: string[] = []
  await t.rejects((async () => { for await (const summary of client.listSessions({ page_size: 2 })) partial.push(summary.session_id) })(), { code: 'FST_OSHARA_UNAUTHORIZED' })
  t.same(partial, ids.slice(0, 2), 'the first page was yielded before page 2 failed')
})

t.test('listSessions refuses a page_size outside 1..200 before any request; a 404 on the first page is an error', async (t) => {
  const { emulator, client } = await setup(t)
  for (const pageSize of [0, 201, 1.5]) {
    await t.rejects(collect(client.listSessions({ page_size: pageSize })), { code: 'FST_OSHARA_INVALID_SESSION', message: /page_size/ })
  }
  t.equal(emulator.requests.length, 0)
  emulator.fault({ target: 'usage', status: 404, body: { detail: 'Not found.' } })
  t.match(await failure(client.listSessions().totals()), { upstreamStatus: 404 })
})

t.test('the read API refuses answers that are not the documented shapes', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ target: 'usage', status: 200, body: { success: true, data: { count: 1, next: null, results: [] } } })
  await t.rejects(client.listSessions().totals(), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /usage list/ })
  emulator.fault({ target: 'form-responses', status: 200, body: { success: true, data: [] } })
  await t.rejects(collect(client.listFormResponses('support-bot')), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /array of form responses/ })
  emulator.fault({ target: 'form-responses', malformed: true })
  await t.rejects(collect(client.listFormResponses('support-bot')), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /not JSON/ })
  emulator.fault({ target: 'billing', status: 200, body: { ...SUMMARY, data: { ...SUMMARY.data, session_id: 'sess_other' } } })
  await t.rejects(client.getSession(SUMMARY.data.session_id), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /another session \(sess_other\)/ })
})
