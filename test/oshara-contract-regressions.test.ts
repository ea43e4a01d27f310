import t from 'tap'
import { readFileSync } from 'node:fs'
import type { OsharaSessionSummary, SessionEndContext } from '../lib/index.js'
import { buildApp, logCapture, postToken } from './helpers/app.js'
import { API_KEY, closedPort, failure, startEmulator } from './helpers/emulator.js'
import { waitUntil } from './helpers/wait.js'
import { createOsharaClient } from '../lib/index.js'

// Regressions of what a first real call met: Oshara's documented answers were read against our
// own guess of them. Each test is named after what it guards.

const DOCUMENTED = (JSON.parse(readFileSync(new URL('fixtures/oshara-api/session-summary.json', import.meta.url), 'utf8')) as { data: OsharaSessionSummary }).data

/** Oshara's documented summary of `sessionId`, finalized, with `changes` (an envelope, as Oshara sends it). */
function documentedSummary (sessionId: string, changes: Record<string, unknown> = {}) {
  return { success: true, message: 'OK', data: { ...DOCUMENTED, session_id: sessionId, ...changes }, errors: null }
}

const tracking = { firstCheckMs: 5, maxCheckIntervalMs: 20 }

t.test('a finished call whose summary has numeric transcript ts and id frees its slot, counts toward quotas and reaches onSessionEnd', async (t) => {
  const emulator = await startEmulator(t)
  const ended: Array<[OsharaSessionSummary, SessionEndContext]> = []
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    limits: { concurrency: 1, key: () => 'ann' },
    quota: { window: 'day', minutes: 60 },
    tracking,
    onSessionEnd: (summary, context) => { ended.push([summary, context]) }
  })
  const { session_id: sessionId } = (await postToken(app)).json()
  const createdAt = new Date().toISOString()
  emulator.fault({ target: 'billing', status: 200, body: documentedSummary(sessionId, { created_at: createdAt }) })
  await waitUntil(() => ended.length === 1, 'onSessionEnd is called')
  t.same(ended[0]?.[0], { ...DOCUMENTED, session_id: sessionId, created_at: createdAt }, 'the summary as sent')
  t.match(ended[0]?.[1], { sessionId, key: 'ann', quotaKey: 'ann' })
  t.equal((await postToken(app)).statusCode, 200, 'the slot is free')
  t.match(await app.oshara.usage('ann'), { minutes: 97 / 60, costUsd: 0.00831 }, 'its minutes (whole seconds, rounded up) and cost counted')
})

t.test('tracking needs only session_id and finalized_at: other fields failing their check are passed on as sent, each logged once per process', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const ended: OsharaSessionSummary[] = []
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    limits: { concurrency: 1, key: () => 'ann' },
    tracking,
    onSessionEnd: (summary) => { ended.push(summary) }
  }, { logger: { level: 'warn', stream: capture.stream } })
  const odd = { turn_count: '6', metadata: 'user_id=u_88', transcript: [{ role: 'user', text: 'Hi', ts: '0:02' }], brand_new: { nested: true } }
  for (let call = 1; call <= 2; call++) {
    const { session_id: sessionId } = (await postToken(app)).json()
    emulator.fault({ target: 'billing', status: 200, body: documentedSummary(sessionId, odd) })
    await waitUntil(() => ended.length === call, `call ${call} is seen as ended`)
    t.match(ended[call - 1], { session_id: sessionId, ...odd }, 'passed on as sent')
  }
  const warnings = capture.lines().filter((line) => String(line.msg).includes('session summary field'))
  t.same(warnings.map((line) => [line.field, line.expected]).sort(), [['metadata', 'an object or null'], ['transcript[].ts', 'number or null'], ['turn_count', 'number or null']],
    'one warning per field name, naming it and what was expected, over two sessions')
  t.match(warnings[0], { level: 40, msg: /as documented; passed on as sent/ })

  const client = createOsharaClient({ origin: 'https://app.example.com', baseUrl: emulator.url, apiKey: API_KEY, retry: false })
  t.teardown(() => client.close())
  emulator.fault({ target: 'billing', status: 200, body: documentedSummary('sess_x', odd) })
  t.match(await failure(client.getSession('sess_x')), { code: 'FST_OSHARA_BAD_RESPONSE' }, 'a direct getSession stays strict')
})

t.test('tracking does not take a finalized_at that is not a time for an end: the slot stays held', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const app = await buildApp(t, emulator, { apiKey: API_KEY, limits: { concurrency: 1, key: () => 'ann' }, tracking }, { logger: { level: 'warn', stream: capture.stream } })
  const { session_id: sessionId } = (await postToken(app)).json()
  emulator.fault({ target: 'billing', status: 200, body: documentedSummary(sessionId, { finalized_at: 'soon' }) }, 3)
  await waitUntil(() => emulator.requests.filter((request) => request.fault?.target === 'billing').length === 3, 'three lookups')
  t.equal((await postToken(app)).statusCode, 429, 'still running as far as tracking knows')
  emulator.fault({ target: 'billing', status: 200, body: documentedSummary(sessionId, { finalized_at: 1764493445 }) })
  await waitUntil(() => capture.lines().some((line) => line.field === 'finalized_at'), 'the odd finalized_at is logged')
  t.match(capture.lines().find((line) => line.field === 'finalized_at'), { expected: 'string or null' })
})

t.test('a 404 from a baseUrl with a wrong path names the slug or baseUrl, not only the slug', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const app = await buildApp(t, emulator, { baseUrl: `${emulator.url}/v2` }, { logger: { level: 'error', stream: capture.stream } })
  const reply = await postToken(app)
  t.equal(reply.statusCode, 502)
  t.equal(reply.json().code, 'FST_OSHARA_AGENT_NOT_FOUND', 'the code of an upstream 404 (SPEC)')
  const line = capture.lines().find((item) => item.code === 'FST_OSHARA_AGENT_NOT_FOUND')
  t.match(line, { fix: new RegExp(`agent slug .*or baseUrl \\(${emulator.url.replace(/\./g, '\\.')}/v2\\)`) })

  const unknown = await buildApp(t, emulator, { agent: 'nobody', decorator: 'unknown', path: '/unknown' }, { logger: { level: 'error', stream: capture.stream } })
  t.equal((await unknown.inject({ method: 'POST', url: '/unknown' })).statusCode, 502)
  t.match(capture.lines().filter((item) => item.code === 'FST_OSHARA_AGENT_NOT_FOUND')[1], { fix: /^Check the agent slug \(the agent option, or agents\) against the Oshara dashboard/ },
    'Oshara\'s own unknown-agent answer keeps the slug fix')
})

t.test('an unreachable baseUrl: the log line names baseUrl, and no message is glued to its cause with ".:"', async (t) => {
  const baseUrl = `http://127.0.0.1:${await closedPort()}`
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const app = await buildApp(t, emulator, { baseUrl, retry: false }, { logger: { level: 'info', stream: capture.stream } })
  const reply = await postToken(app)
  t.equal(reply.statusCode, 503)
  t.equal(reply.json().message, 'The voice service is unreachable; try again shortly')
  const hint = capture.lines().find((line) => String(line.msg).startsWith('oshara: the voice service could not be reached'))
  t.match(hint, { level: 40, code: 'FST_OSHARA_UNAVAILABLE', detail: 'ECONNREFUSED', fix: new RegExp(`baseUrl \\(${baseUrl.replace(/\./g, '\\.')}\\)`) })
  const logged = capture.lines().find((line) => (line.err as { message?: string } | undefined)?.message !== undefined)
  t.match((logged?.err as { message: string }).message, /^The voice service is unreachable; try again shortly: connect ECONNREFUSED/, 'the logged error reads as one sentence')
  t.notMatch(capture.text(), '.:', 'nothing glued with ".:"')
})

t.test('a tracked session whose lookups cannot reach Oshara: its slot stays held, and the warning names baseUrl', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const app = await buildApp(t, emulator, { apiKey: API_KEY, retry: false, limits: { concurrency: 1, key: () => 'ann' }, tracking }, { logger: { level: 'warn', stream: capture.stream } })
  emulator.fault({ target: 'billing', reset: true }, 100)
  const { session_id: sessionId } = (await postToken(app)).json()
  emulator.endSession(sessionId)
  const failed = () => capture.lines().filter((line) => String(line.msg).startsWith('oshara: session lookup failed; its slot stays held: Check that baseUrl'))
  await waitUntil(() => failed().length >= 1, 'a lookup failed')
  t.match(failed()[0], { level: 40, code: 'FST_OSHARA_UNAVAILABLE', fix: new RegExp(`baseUrl \\(${emulator.url.replace(/\./g, '\\.')}\\)`) })
  t.equal((await postToken(app)).statusCode, 429, 'not confirmed ended: the slot stays held')
})
