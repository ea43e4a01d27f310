import t, { type Test } from 'tap'
import Fastify from 'fastify'
import osharaVoice, { createOsharaClient, type OsharaVoiceOptions } from '../lib/index.js'
import type { OsharaEmulator } from '../lib/emulator.js'
import { logCapture } from './helpers/app.js'
import { closedPort, ORIGIN, startEmulator } from './helpers/emulator.js'
import { waitUntil } from './helpers/wait.js'

// checkOnReady: one GET of each static agent's appearance once the app is ready, never delaying it;
// what it finds is logged at warn with the fix.

const appearanceRequests = (emulator: OsharaEmulator) => emulator.requests.filter((request) => request.url.includes('/appearance/'))

async function startApp (t: Test, options: Partial<OsharaVoiceOptions>) {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', public: true, retry: false, ...options } as OsharaVoiceOptions)
  t.teardown(() => app.close())
  await app.ready()
  const warnings = () => logs.lines().filter((line) => line.level === 40 && String(line.msg).includes('oshara:'))
  return { app, logs, warnings }
}

t.test('a known agent on an allowed origin: one GET per static slug with the configured Origin, no warning', async (t) => {
  const emulator = await startEmulator(t)
  const { logs, warnings } = await startApp(t, { baseUrl: emulator.url, agents: ['sales-bot', 'support-bot'] })
  await waitUntil(() => logs.lines().filter((line) => line.msg === 'oshara: agent checked: it exists and allows this origin').length === 2, 'both slugs are checked')
  const requests = appearanceRequests(emulator)
  t.same(requests.map((request) => request.url).sort(), ['/api/agents/sales-bot/appearance/', '/api/agents/support-bot/appearance/'], 'each slug once')
  t.ok(requests.every((request) => request.method === 'GET' && request.headers.origin === ORIGIN))
  t.same(warnings(), [])
})

t.test('an unknown slug: a warning naming the slug and the fix', async (t) => {
  const emulator = await startEmulator(t)
  const { warnings } = await startApp(t, { baseUrl: emulator.url, agent: 'suport-bot' })
  await waitUntil(() => warnings().length === 1, 'the warning is logged')
  t.match(warnings()[0], {
    agent: 'suport-bot',
    upstreamStatus: 404,
    msg: /agent "suport-bot" was not found at http:\/\/127\.0\.0\.1:\d+ .*Check the agent slug .*baseUrl/
  })
})

t.test('an origin not in allowed_origins: a warning naming the origin and allowed_origins', async (t) => {
  const emulator = await startEmulator(t)
  const { warnings } = await startApp(t, { baseUrl: emulator.url, origin: 'https://other.example.com' })
  await waitUntil(() => warnings().length === 1, 'the warning is logged')
  t.match(warnings()[0], { origin: 'https://other.example.com', upstreamStatus: 403, msg: /origin https:\/\/other\.example\.com is not in the allowed_origins of agent "support-bot".*Add https:\/\/other\.example\.com/ })
})

t.test('an unreachable baseUrl: a warning naming baseUrl', async (t) => {
  const baseUrl = `http://127.0.0.1:${await closedPort()}`
  const { warnings } = await startApp(t, { baseUrl })
  await waitUntil(() => warnings().length === 1, 'the warning is logged')
  t.match(warnings()[0], { baseUrl, msg: new RegExp(`could not reach baseUrl ${baseUrl.replace(/\./g, '\\.')} to check agent "support-bot" \\(ECONNREFUSED\\)`) })
})

t.test('any other failure: a warning with its code', async (t) => {
  const emulator = await startEmulator(t)
  emulator.fault({ target: 'appearance', status: 500 })
  const { warnings } = await startApp(t, { baseUrl: emulator.url })
  await waitUntil(() => warnings().length === 1, 'the warning is logged')
  t.match(warnings()[0], { code: 'FST_OSHARA_UPSTREAM_ERROR', msg: /startup check of agent "support-bot" .* failed \(FST_OSHARA_UPSTREAM_ERROR\)/ })
})

t.test('getAppearance refuses an answer that is not an appearance object', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: false })
  t.teardown(() => client.close())
  t.match(await client.getAppearance('support-bot'), { name: 'support-bot', default_language: 'en' })
  emulator.fault({ target: 'appearance', malformed: true })
  await t.rejects(client.getAppearance('support-bot'), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /not JSON/ })
  emulator.fault({ target: 'appearance', status: 200, body: { languages: 'en' } })
  await t.rejects(client.getAppearance('support-bot'), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /not an appearance object/ })
})

t.test('ready does not wait for the check; closing the app cuts it short without a warning', async (t) => {
  const emulator = await startEmulator(t)
  emulator.fault({ target: 'appearance', delayMs: 60_000 })
  const { app, warnings } = await startApp(t, { baseUrl: emulator.url })
  await emulator.waitForRequest((request) => request.url.includes('/appearance/'))
  t.pass('the app is ready while the check is under way')
  await app.close()
  t.same(warnings(), [], 'an aborted check is not a finding')
})

t.test('checkOnReady: false, or no static slug, makes no request', async (t) => {
  const emulator = await startEmulator(t)
  await startApp(t, { baseUrl: emulator.url, checkOnReady: false })
  await startApp(t, { baseUrl: emulator.url, agent: () => 'support-bot', decorator: 'byRequest', path: '/by-request' })
  const probe = await startApp(t, { baseUrl: emulator.url, decorator: 'probe', path: '/probe' })
  await waitUntil(() => appearanceRequests(emulator).length === 1, 'the default check of the third app')
  await probe.app.close()
  t.equal(appearanceRequests(emulator).length, 1, 'only the app with a static slug and the default checked')
})

t.test('the emulator serves the appearance with the documented fields, gated like minting', async (t) => {
  const emulator = await startEmulator(t, {
    characters: [
      { slug: 'support-bot', allowed_origins: [ORIGIN], name: 'Support', languages: ['en', 'pt-BR'], max_call_seconds: 600, forms: [{ id: 'lead', title: 'Lead', submit_url: null, fields: [] }] },
      { slug: 'plain', allowed_origins: [ORIGIN], language: 'fr' },
      { slug: 'retired', allowed_origins: [ORIGIN], active: false }
    ]
  })
  const get = async (slug: string, origin = ORIGIN) => {
    const response = await fetch(`${emulator.url}/api/agents/${slug}/appearance/`, { headers: { origin } })
    return { status: response.status, body: await response.json() as Record<string, unknown> }
  }
  const support = await get('support-bot')
  t.equal(support.status, 200)
  t.match(support.body, {
    name: 'Support',
    languages: [{ code: 'en', label: 'English', native_label: 'English' }, { code: 'pt-BR', label: 'pt-BR', native_label: 'pt-BR' }],
    default_language: 'en',
    max_call_seconds: 600,
    forms: [{ id: 'lead', title: 'Lead', submit_url: null, fields: [] }],
    theme: { primary_color: String },
    labels: Object,
    dimensions: Object
  })
  t.match((await get('plain')).body, { name: 'plain', languages: [{ code: 'fr', label: 'French', native_label: 'Français' }], default_language: 'fr', max_call_seconds: 0, forms: [] })
  t.match(await get('support-bot', 'https://evil.example'), { status: 403 })
  t.match(await get('retired'), { status: 404 })
  t.match(await get('nobody'), { status: 404 })
})
