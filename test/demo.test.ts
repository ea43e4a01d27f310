import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { copyFile, mkdir } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { chromium, type Browser, type Page, type Response } from 'playwright-core'
import { createOsharaEmulator } from '../lib/emulator.js'
import { DEMO_USER, startDemo, type Demo } from '../demo/server.js'

// The demo (npm start): its HTTP surface, its real-Oshara mode, and the page end to end in
// headless Chromium against the local emulator. Loopback only.

// Several browser tests and two child processes: more than the default minute for the file on a
// busy machine. Each test keeps its own, shorter timeout.
t.setTimeout(180_000)

const CHROMIUM = '/usr/bin/chromium'
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ARTIFACTS = new URL('./artifacts/', import.meta.url)
const DOCS_SCREENSHOT = new URL('../docs/demo.png', import.meta.url)

async function demoFor (t: Test, options: Parameters<typeof startDemo>[0] = {}): Promise<Demo> {
  const demo = await startDemo({ port: 0, env: {}, ...options })
  t.teardown(() => demo.close())
  return demo
}

function get (url: string, init: RequestInit = {}): Promise<globalThis.Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(5000) })
}

function sessionRequests (demo: Demo): Array<{ body: unknown, headers: Record<string, unknown> }> {
  return (demo.emulator?.requests ?? []).filter((request) => request.url.startsWith('/api/agents/agent-session'))
}

t.test('serves the page, its script and livekit-client from node_modules', { timeout: 20_000 }, async (t) => {
  const demo = await demoFor(t)
  t.match(demo.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.not(demo.url, 'http://127.0.0.1:0')
  t.ok(demo.emulator, 'no OSHARA_* settings: the local emulator')

  const page = await get(`${demo.url}/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  const html = await page.text()
  t.match(html, 'Start call')
  t.match(html, 'aria-live="polite"')
  t.match(html, '<h2 id="recent-heading">Recent calls</h2>')

  const script = await get(`${demo.url}/app.js`)
  t.equal(script.status, 200)
  t.match(script.headers.get('content-type'), /javascript/)
  t.match(await script.text(), "from './vendor/livekit-client.esm.mjs'")

  const livekit = await get(`${demo.url}/vendor/livekit-client.esm.mjs`)
  t.equal(livekit.status, 200)
  t.match(livekit.headers.get('content-type'), /javascript/)
  t.match(await livekit.text(), /export\s*\{[^}]*\bRoom\b/, 'the ESM build, exporting Room')
  for (const path of ['/vendor/livekit-client.umd.js', '/vendor/', '/vendor/../package.json', '/vendor/%2e%2e/package.json']) {
    t.equal((await get(`${demo.url}${path}`)).status, 404, `${path}: only the ESM build and its map are served`)
  }
})

t.test('the voice routes: fake user as metadata, one call per user, DELETE frees it', { timeout: 20_000 }, async (t) => {
  const demo = await demoFor(t)
  const context = await (await get(`${demo.url}/api/demo`)).json()
  t.same(context, { user: DEMO_USER, agent: 'support-bot', upstream: 'emulator' })

  const first = await get(`${demo.url}/voice-token`, { method: 'POST' })
  t.equal(first.status, 200)
  t.equal(first.headers.get('cache-control'), 'no-store')
  const session = await first.json() as Record<string, string>
  const [upstream] = sessionRequests(demo)
  t.equal(upstream?.headers.origin, demo.url, 'the demo sends its own origin, which the emulator allows')
  t.match(upstream?.body, {
    agent: 'support-bot',
    metadata: { user_id: 'demo-user-1', user_name: 'Ada Demo', user_email: 'ada@example.com', plan: 'pro', _oshara_sig: /^v1\./ }
  })
  const { _oshara_sig: _signature, ...metadata } = (upstream?.body as { metadata: Record<string, unknown> }).metadata
  t.same(metadata, { user_id: 'demo-user-1', user_name: 'Ada Demo', user_email: 'ada@example.com', plan: 'pro' }, 'the metadata, plus its signature (tools)')

  const second = await get(`${demo.url}/voice-token`, { method: 'POST' })
  t.equal(second.status, 429)
  t.equal((await second.json() as Record<string, unknown>).code, 'FST_OSHARA_SESSION_LIMIT')
  t.ok(Number(second.headers.get('retry-after')) >= 1)

  const unknown = await get(`${demo.url}/voice-token/sess_unknown`, { method: 'DELETE' })
  t.equal(unknown.status, 404)
  const ended = await get(`${demo.url}/voice-token/${session.session_id as string}`, { method: 'DELETE' })
  t.equal(ended.status, 204)
  t.equal((await get(`${demo.url}/voice-token`, { method: 'POST' })).status, 200)
})

/** Polls `check` until it returns a value, or fails after `timeoutMs`. */
async function eventually<T> (check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}

interface RecentCalls { tracking: boolean, calls: Array<Record<string, unknown>> }

async function recentCalls (demo: Demo): Promise<RecentCalls> {
  const reply = await get(`${demo.url}/demo/recent-calls`)
  return await reply.json() as RecentCalls
}

/** The recent call of `sessionId`, once `GET /demo/recent-calls` lists it. */
function recentCallOf (demo: Demo, sessionId: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
  return eventually(async () => (await recentCalls(demo)).calls.find((call) => call.session_id === sessionId), timeoutMs, `${sessionId} under recent calls`)
}

function endOnOsharasSide (demo: Demo, sessionId: string, body: unknown): Promise<globalThis.Response> {
  return get(`${demo.url}/demo/sessions/${encodeURIComponent(sessionId)}/end`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
}

t.test('recent calls and the emulator controls: only the user\'s own calls, ended ones listed with their summary', { timeout: 30_000 }, async (t) => {
  const demo = await demoFor(t)
  const emulator = demo.emulator as NonNullable<Demo['emulator']>
  const empty = await get(`${demo.url}/demo/recent-calls`)
  t.equal(empty.status, 200)
  t.equal(empty.headers.get('cache-control'), 'no-store')
  t.same(await empty.json(), { tracking: true, calls: [] }, 'tracking on (the emulator has a key), nothing ended yet')

  const session = await (await get(`${demo.url}/voice-token`, { method: 'POST' })).json() as Record<string, string>
  const sessionId = session.session_id as string

  // A session of someone else (minted at the emulator directly): not the demo user's to end.
  const stranger = await (await get(`${emulator.url}/api/agents/agent-session/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: demo.url },
    body: JSON.stringify({ agent: 'support-bot' })
  })).json() as Record<string, string>
  const strangerId = stranger.session_id as string
  t.equal((await endOnOsharasSide(demo, strangerId, { reason: 'agent_hangup' })).status, 404, "another user's session")
  t.equal(emulator.sessions.get(strangerId)?.ended, false, 'and it is not ended')
  t.equal((await endOnOsharasSide(demo, 'sess_unknown', { reason: 'agent_hangup' })).status, 404, 'an unknown session')
  t.equal((await endOnOsharasSide(demo, sessionId, { reason: 'client_left' })).status, 400, 'only agent_hangup and tab_crashed')
  t.equal((await endOnOsharasSide(demo, sessionId, {})).status, 400, 'a reason is required')
  t.equal(emulator.sessions.get(sessionId)?.ended, false)

  // The user's own call: the emulator ends it, once.
  const ended = await endOnOsharasSide(demo, sessionId, { reason: 'tab_crashed' })
  t.equal(ended.status, 200)
  t.same(await ended.json(), { session_id: sessionId, end_reason: 'tab_crashed' })
  t.equal(emulator.sessions.get(sessionId)?.end_reason, 'tab_crashed')
  t.equal((await endOnOsharasSide(demo, sessionId, { reason: 'agent_hangup' })).status, 404, 'an ended call is no longer in progress')

  // No DELETE was sent, yet the next call starts: the plugin finds the ended call before a 429.
  const next = await get(`${demo.url}/voice-token`, { method: 'POST' })
  t.equal(next.status, 200, 'no 429')
  const nextId = (await next.json() as Record<string, string>).session_id as string

  const recent = await recentCallOf(demo, sessionId)
  const summary = await demo.app.oshara.client.getSession(sessionId)
  t.ok(summary.finalized_at, 'Oshara (the emulator) finalized it')
  t.same(recent, {
    session_id: sessionId,
    ended_at: summary.finalized_at,
    duration_seconds: summary.session_duration_seconds,
    cost_usd: summary.estimated_cost_usd,
    transcript: (summary.transcript ?? []).slice(0, 3).map(({ role, text }) => ({ role, text }))
  }, 'session id, end time, duration, cost and the first transcript lines')
  t.match(recent.transcript, [{ role: 'assistant', text: 'Hi Ada! How can I help?' }])

  // DELETE (End call, a closed tab): the emulator ends the session as Oshara would when the participant leaves.
  t.equal((await get(`${demo.url}/voice-token/${nextId}`, { method: 'DELETE' })).status, 204)
  t.equal(emulator.sessions.get(nextId)?.end_reason, 'client_left')
  t.equal((await endOnOsharasSide(demo, nextId, { reason: 'agent_hangup' })).status, 404, 'a released call is no longer in progress')
  await recentCallOf(demo, nextId)
  t.same((await recentCalls(demo)).calls.map((call) => call.session_id), [nextId, sessionId], 'newest first')
})

/** The next midnight UTC, when the demo's daily voice minutes reset (ISO time). */
function nextMidnightUtc (): string {
  const now = new Date()
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString()
}

t.test('agent tools: the tool answers for the user of a session the demo minted; a forged session is refused', { timeout: 20_000 }, async (t) => {
  const demo = await demoFor(t)
  const minted = await get(`${demo.url}/voice-token`, { method: 'POST' })
  const { session_id: sessionId } = await minted.json() as { session_id: string }
  const metadata = demo.emulator?.sessions.get(sessionId)?.metadata as Record<string, unknown>
  t.match(metadata._oshara_sig, /^v1\.\d+\.1\.[\w-]{43}$/, 'the session Oshara got is signed')
  const looked = await get(`${demo.url}/demo/sessions/${sessionId}/lookup-order`, { method: 'POST' })
  t.equal(looked.status, 200)
  t.same(await looked.json(), {
    tool: 'lookup_order',
    args: { order_id: 'A-1001' },
    status: 200,
    body: { order_id: 'A-1001', item: 'Noise-cancelling headset', status: 'shipped', eta: 'Thursday', customer: DEMO_USER.name }
  })
  t.equal((await get(`${demo.url}/demo/sessions/sess_not_mine/lookup-order`, { method: 'POST' })).status, 404, 'only the user\'s own call')
  const forged = await get(`${demo.url}/demo/forged-tool-call`, { method: 'POST' })
  t.same(await forged.json(), {
    tool: 'lookup_order',
    args: { order_id: 'B-2002' },
    claimed: { user_id: 'demo-user-2', user_name: 'Someone Else' },
    status: 403,
    body: { error: 'This call was not started by this app.', code: 'FST_OSHARA_TOOL_FORBIDDEN' }
  })
  t.equal(demo.emulator?.activeSessions(), 1, 'the forged session was ended; the user\'s call runs on')
  const noSecret = await get(`${demo.url}/oshara/tools/lookup_order`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.same({ status: noSecret.status, body: await noSecret.json() }, { status: 401, body: { error: 'Unauthorized.', code: 'FST_OSHARA_TOOL_UNAUTHORIZED' } })
  t.same(demo.app.oshara.stats().tools, { lookup_order: { ok: 1, forbidden: 1, unauthorized: 1 } })
})

t.test('GET /demo/usage: the voice minutes used today and the budget (DEMO_MINUTES)', { timeout: 20_000 }, async (t) => {
  const demo = await demoFor(t, { env: { DEMO_MINUTES: '2.5' } })
  const reply = await get(`${demo.url}/demo/usage`)
  t.equal(reply.status, 200)
  t.equal(reply.headers.get('cache-control'), 'no-store')
  t.same(await reply.json(), {
    quota: true, window: 'day', budget: { minutes: 2.5 }, usage: { sessions: 0, minutes: 0, costUsd: 0, resetsAt: nextMidnightUtc() }
  }, 'nothing used yet; the budget resets at midnight UTC')

  const minted = await get(`${demo.url}/voice-token`, { method: 'POST' })
  t.equal(minted.status, 200)
  t.equal(minted.headers.get('ratelimit-policy'), '"minutes";q=2.5;w=86400', 'the budget in RateLimit-Policy')
  t.match(minted.headers.get('ratelimit'), /^"minutes";r=2;t=\d+$/, 'whole minutes left in RateLimit')
  t.match(await (await get(`${demo.url}/demo/usage`)).json(), { usage: { sessions: 1, minutes: 0 } }, 'a call counts its minutes when it ends')

  for (const value of ['lots', '-1']) {
    await t.rejects(startDemo({ port: 0, env: { DEMO_MINUTES: value } }),
      { message: `DEMO_MINUTES must be a number of minutes >= 0 (got ${JSON.stringify(value)}), e.g. DEMO_MINUTES=30 npm start` })
  }
})

t.test('OSHARA_AGENT + OSHARA_ORIGIN: no emulator, the configured Oshara and origin', { timeout: 20_000 }, async (t) => {
  // A stand-in for the real Oshara: the demo must not start its own.
  const oshara = await createOsharaEmulator({
    characters: [{ slug: 'sales-bot', allowed_origins: ['https://shop.example.com'] }],
    apiKeys: ['sk_demo_key']
  })
  t.teardown(() => oshara.close())
  const demo = await demoFor(t, {
    env: { OSHARA_AGENT: 'sales-bot', OSHARA_ORIGIN: 'https://shop.example.com', OSHARA_BASE_URL: oshara.url, OSHARA_API_KEY: 'sk_demo_key' }
  })
  t.equal(demo.emulator, undefined)
  t.match(demo.description, /real Oshara at http:\/\/127\.0\.0\.1:\d+ \(agent sales-bot, Origin https:\/\/shop\.example\.com, with API key\)/)
  t.notMatch(demo.description, 'sk_demo_key', 'the key is never printed')
  t.same(await (await get(`${demo.url}/api/demo`)).json(), { user: DEMO_USER, agent: 'sales-bot', upstream: 'oshara' })

  const reply = await get(`${demo.url}/voice-token`, { method: 'POST' })
  t.equal(reply.status, 200)
  const minted = oshara.requests.find((request) => request.url.startsWith('/api/agents/agent-session/'))
  t.equal(minted?.headers.origin, 'https://shop.example.com')
  t.equal(minted?.headers['x-api-key'], 'sk_demo_key')
  t.match(minted?.body, { agent: 'sales-bot', metadata: { user_id: 'demo-user-1' } })

  // With OSHARA_API_KEY, sessions are tracked against the real Oshara; the emulator controls do not exist.
  const { session_id: sessionId } = await reply.json() as Record<string, string>
  t.same(await recentCalls(demo), { tracking: true, calls: [] })
  t.match(await (await get(`${demo.url}/demo/usage`)).json(), { quota: true, budget: { minutes: 10 }, usage: { sessions: 1 } }, 'voice minutes counted (the default 10)')
  t.equal((await endOnOsharasSide(demo, sessionId as string, { reason: 'agent_hangup' })).status, 404, 'no emulator controls')
  t.equal(oshara.sessions.get(sessionId as string)?.ended, false)
  // The call ends at Oshara (the participant left); the next Start finds it over instead of answering 429.
  t.equal(oshara.endSession(sessionId as string), true)
  t.equal((await get(`${demo.url}/voice-token`, { method: 'POST' })).status, 200)
  t.match(await recentCallOf(demo, sessionId as string), { session_id: sessionId, cost_usd: /^\d+\.\d{4}$/ })

  await t.rejects(startDemo({ port: 0, env: { OSHARA_AGENT: 'sales-bot' } }), /Set both OSHARA_AGENT and OSHARA_ORIGIN/)
})

t.test('OSHARA_AGENT + OSHARA_ORIGIN without OSHARA_API_KEY: no tracking, no recent calls', { timeout: 20_000 }, async (t) => {
  const oshara = await createOsharaEmulator({ characters: [{ slug: 'sales-bot', allowed_origins: ['https://shop.example.com'] }] })
  t.teardown(() => oshara.close())
  const demo = await demoFor(t, { env: { OSHARA_AGENT: 'sales-bot', OSHARA_ORIGIN: 'https://shop.example.com', OSHARA_BASE_URL: oshara.url } })
  t.same(await recentCalls(demo), { tracking: false, calls: [] })
  t.same(await (await get(`${demo.url}/demo/usage`)).json(), { quota: false }, 'no voice minutes without tracking')
  const first = await get(`${demo.url}/voice-token`, { method: 'POST' })
  t.equal(first.status, 200)
  const second = await get(`${demo.url}/voice-token`, { method: 'POST' })
  t.equal(second.status, 429, 'one call per user')
  t.ok(Number(second.headers.get('retry-after')) <= 600, 'without tracking a slot is held 10 minutes at most (holdMs)')
  t.equal(oshara.requests.filter((request) => request.url.startsWith('/api/billing/')).length, 0, 'never asks about sessions')
})

t.test('a port in use says how to pick another (PORT)', { timeout: 60_000 }, async (t) => {
  // Another process holds the port: `npm start` (node --import tsx demo/server.ts) must stop and say what to do.
  const holder = createServer()
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject)
    holder.listen(0, '127.0.0.1', resolve)
  })
  t.teardown(() => new Promise((resolve) => holder.close(resolve)))
  const { port } = holder.address() as AddressInfo

  const child = spawn(process.execPath, ['--import', 'tsx', 'demo/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', OSHARA_AGENT: '', OSHARA_ORIGIN: '', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill() })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })

  // The demo must give up on its own: a deadline, not a sleep.
  const [code] = await once(child, 'exit', { signal: AbortSignal.timeout(45_000) }) as [number | null, NodeJS.Signals | null]
  t.not(code, 0, 'a non-zero exit code')
  t.not(code, null, 'it exited on its own (no signal)')
  t.match(stderr, `The demo did not start: port ${port} on 127.0.0.1 is already in use`, 'names the port in use')
  t.match(stderr, `Pick another port with PORT, e.g. PORT=${port + 1} npm start`, 'says how to pick another one')
  t.notMatch(stdout, 'Oshara voice demo:', 'never claims to be running')
  t.equal(holder.listening, true, 'the other process keeps its port')
})

t.test('PORT that is no port number is refused with what PORT takes', { timeout: 60_000 }, async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'demo/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: 'http', OSHARA_AGENT: '', OSHARA_ORIGIN: '' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill() })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const [code] = await once(child, 'exit', { signal: AbortSignal.timeout(45_000) }) as [number | null]
  t.equal(code, 1)
  t.match(stderr, 'PORT must be a port number from 0 to 65535 (got "http"), e.g. PORT=3001 npm start')
})

if (!existsSync(CHROMIUM)) {
  t.skip('chromium not found: browser tests did not run (apt-get install chromium)', () => {})
} else {
  t.test('end to end in headless Chromium: start, see the session, end, limit', { timeout: 90_000 }, browserTest)
  t.test("after End the page clears the ended session's details", { timeout: 60_000 }, endClearsTest)
  t.test('a crashed tab: the next Start gets a new call at once', { timeout: 60_000 }, crashedTabTest)
  t.test('the agent hangs up: the call ends and appears under Recent calls with its duration and cost', { timeout: 60_000 }, agentHangsUpTest)
  t.test('the real Oshara without an API key: the panel says recent calls need one', { timeout: 60_000 }, noKeyPanelTest)
  t.test('the page shows the voice minutes left', { timeout: 60_000 }, minutesLeftTest)
  t.test('used-up minutes are refused politely', { timeout: 60_000 }, minutesUsedUpTest)
  t.test('small voice-minute budgets read in seconds, and a budget of 0 turns Start call off with the reason', { timeout: 120_000 }, smallBudgetsTest)
  t.test('agent tools: the agent looks up the user\'s order; a forged call is refused', { timeout: 60_000 }, agentToolsTest)
}

/** Debian's Chromium, headless, closed at the end of `t`. */
async function launchChromium (t: Test): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000
  })
  t.teardown(() => browser.close())
  return browser
}

/** Clicks Start call on `page` and returns the POST /voice-token response it caused. */
async function pressStart (page: Page): Promise<Response> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/voice-token'),
    page.getByRole('button', { name: 'Start call' }).click()
  ])
  return response
}

async function text (page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).textContent() ?? '').trim()
}

async function browserTest (t: Test): Promise<void> {
  const demo = await demoFor(t)
  const emulator = demo.emulator as NonNullable<Demo['emulator']>
  const browser = await launchChromium(t)
  const context = await browser.newContext({ viewport: { width: 960, height: 760 } })
  context.setDefaultTimeout(10_000)
  const requested: string[] = []
  const pageErrors: string[] = []
  context.on('request', (request) => { requested.push(request.url()) })
  const open = async (): Promise<Page> => {
    const page = await context.newPage()
    page.on('pageerror', (error) => { pageErrors.push(error.message) })
    await page.goto(demo.url)
    await page.getByText('Ready. Press Start call').waitFor()
    return page
  }

  // 1. Start: a session is minted for the fake user; the page shows it and why media fails.
  const page = await open()
  t.equal(await text(page, '#user'), 'Ada Demo (pro)')
  t.equal(await text(page, '#upstream'), 'local emulator')
  t.equal((await pressStart(page)).status(), 200)
  await page.getByText('Could not reach the media server at ws://127.0.0.1:7880: the local emulator mints real tokens but runs no LiveKit server').waitFor()
  const sessionId = await text(page, '#session-id')
  const minted = emulator.sessions.get(sessionId)
  t.ok(minted, `the page shows the minted session id (${sessionId})`)
  t.equal(await text(page, '#room'), minted?.room_name, 'the room, decoded from the token')
  t.equal(await text(page, '#identity'), minted?.participant_identity, 'the identity (token sub)')
  t.match(await text(page, '#expires'), /\(in (59|60) min\)$/, 'the expiry, from the token exp')
  t.equal(await text(page, '#livekit-url'), 'ws://127.0.0.1:7880')
  t.equal(await text(page, '#connection-text'), 'could not connect')
  t.equal(await page.getByRole('button', { name: 'End call' }).isEnabled(), true)
  t.equal(await page.getByRole('button', { name: 'Start call' }).isEnabled(), false, 'one call per tab')
  const upstream = sessionRequests(demo)
  t.equal(upstream.length, 1)
  t.match(upstream[0]?.body, { metadata: { user_id: 'demo-user-1', user_email: 'ada@example.com' } }, 'the fake user reached Oshara as metadata')
  t.equal(upstream[0]?.headers.origin, demo.url)

  await mkdir(ARTIFACTS, { recursive: true })
  const screenshot = new URL('demo.png', ARTIFACTS)
  await page.screenshot({ path: screenshot.pathname, fullPage: true })
  // docs/demo.png, the repository's picture of the page (not shipped, so the README does not show it):
  // written when missing, or refreshed on demand (it changes every run).
  if (!existsSync(DOCS_SCREENSHOT) || process.env.UPDATE_SCREENSHOTS === '1') await copyFile(screenshot, DOCS_SCREENSHOT)

  // 2. End: the room is left and DELETE /voice-token/{id} frees the slot.
  const [deleted] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'DELETE'),
    page.getByRole('button', { name: 'End call' }).click()
  ])
  t.equal(new URL(deleted.url()).pathname, `/voice-token/${sessionId}`)
  t.equal(deleted.status(), 204)
  await page.getByText('Call ended. Your slot is free: you can start a new call.').waitFor()
  t.equal(await text(page, '#connection-text'), 'call ended')

  // 3. A new call gets a fresh session (no cached token).
  t.equal((await pressStart(page)).status(), 200)
  await page.getByText('Could not reach the media server').waitFor()
  const secondId = await text(page, '#session-id')
  t.not(secondId, sessionId, 'a new session')
  t.ok(emulator.sessions.has(secondId))

  // 4. Another tab, beyond the limit of one call per user: the limiter's 429 in words.
  const other = await open()
  const refused = await pressStart(other)
  t.equal(refused.status(), 429)
  const retryAfter = Number(await refused.headerValue('retry-after'))
  t.ok(retryAfter >= 1)
  await other.getByText('Too many active calls, try again in').waitFor()
  t.match(await text(other, '#status'), new RegExp(`^Too many active calls, try again in ${retryAfter} s\\b`))
  t.equal(await other.getByRole('button', { name: 'Start call' }).isEnabled(), true, 'the user may try again')
  await other.screenshot({ path: new URL('demo-429.png', ARTIFACTS).pathname, fullPage: true })

  // 5. Leaving the first tab releases its slot (pagehide, keepalive DELETE): the other tab gets a call.
  await page.goto('about:blank')
  let status = 429
  for (let attempt = 0; attempt < 30 && status === 429; attempt++) {
    if (attempt > 0) await sleep(100)
    status = (await pressStart(other)).status()
  }
  t.equal(status, 200, 'the slot of the tab that was left is free')
  await other.getByText('Could not reach the media server').waitFor()

  t.same(pageErrors, [], 'no uncaught errors on the page')
  const foreign = requested.filter((url) => !url.startsWith(`${demo.url}/`) && !url.startsWith('http://127.0.0.1:7880/') && !url.startsWith('about:') && !url.startsWith('data:'))
  t.same(foreign, [], 'everything loads from the demo itself (no CDN); only the media server is elsewhere')
}

/** The page's fields that describe one session. */
const SESSION_FIELDS = ['#session-id', '#room', '#identity', '#expires', '#livekit-url']

async function endClearsTest (t: Test): Promise<void> {
  const demo = await demoFor(t)
  const browser = await launchChromium(t)
  const page = await browser.newPage({ viewport: { width: 960, height: 760 } })
  page.setDefaultTimeout(10_000)
  const pageErrors: string[] = []
  page.on('pageerror', (error) => { pageErrors.push(error.message) })
  await page.goto(demo.url)
  await page.getByText('Ready. Press Start call').waitFor()

  // A session is shown while it lasts...
  const started = await pressStart(page)
  t.equal(started.status(), 200)
  const session = await started.json() as Record<string, string>
  await page.getByText('Could not reach the media server').waitFor()
  t.equal(await text(page, '#session-id'), session.session_id)
  t.equal(await text(page, '#room'), session.room_name)
  t.equal(await text(page, '#identity'), session.participant_identity)
  t.equal(await text(page, '#livekit-url'), session.livekit_url)
  t.match(await text(page, '#expires'), /\(in \d+ min\)$/)

  // ...and none of it stays once the call is ended.
  await page.getByRole('button', { name: 'End call' }).click()
  await page.getByText('Call ended. Your slot is free: you can start a new call.').waitFor()
  for (const selector of SESSION_FIELDS) {
    t.equal(await text(page, selector), 'none yet', `${selector} is cleared`)
    t.equal(await page.locator(selector).evaluate((element) => element.classList.contains('empty')), true, `${selector} looks empty`)
  }
  t.equal(await text(page, '#connection-text'), 'call ended')
  // The ended call reaches Recent calls (the emulator ends it when the page releases its slot):
  // its id is listed there, and nothing of it anywhere else.
  await page.locator(`#recent-rows tr[data-session-id="${session.session_id as string}"]`).waitFor({ timeout: 20_000 })
  const html = await page.content()
  const recentHtml = await page.locator('#recent').evaluate((element) => element.outerHTML)
  t.ok(html.includes(recentHtml))
  const outsideRecentCalls = html.replace(recentHtml, '')
  for (const [name, value] of Object.entries({ token: session.token, room_name: session.room_name, participant_identity: session.participant_identity })) {
    t.ok(value !== undefined && value !== '' && !html.includes(value), `the ended session's ${name} is nowhere on the page`)
  }
  t.ok(session.session_id !== undefined && !outsideRecentCalls.includes(session.session_id), 'its session_id only under Recent calls')
  t.equal(await page.getByRole('button', { name: 'Start call' }).isEnabled(), true, 'a new call can start')
  t.same(pageErrors, [], 'no uncaught errors on the page')
}

/** A page on `demo`, loaded and ready, that collects uncaught errors and the DELETEs it sends. */
async function readyPage (t: Test, demo: Demo): Promise<{ page: Page, pageErrors: string[], deletes: string[] }> {
  const browser = await launchChromium(t)
  const page = await browser.newPage({ viewport: { width: 960, height: 900 } })
  page.setDefaultTimeout(10_000)
  const pageErrors: string[] = []
  const deletes: string[] = []
  page.on('pageerror', (error) => { pageErrors.push(error.message) })
  page.on('request', (request) => { if (request.method() === 'DELETE') deletes.push(new URL(request.url()).pathname) })
  await page.goto(demo.url)
  await page.getByText('Ready. Press Start call').waitFor()
  return { page, pageErrors, deletes }
}

/** Presses Start call and waits for the (emulated) media failure; returns the session id shown. */
async function startACall (t: Test, page: Page): Promise<string> {
  const started = await pressStart(page)
  t.equal(started.status(), 200)
  await page.getByText('Could not reach the media server').waitFor()
  const sessionId = await text(page, '#session-id')
  t.equal(sessionId, (await started.json() as Record<string, string>).session_id, 'the page shows the new session id')
  return sessionId
}

/** Clicks an emulator button and returns the demo server's answer to the end request it caused. */
async function pressEndButton (page: Page, name: string, sessionId: string): Promise<Response> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === `/demo/sessions/${sessionId}/end`),
    page.getByRole('button', { name }).click()
  ])
  return response
}

async function crashedTabTest (t: Test): Promise<void> {
  const demo = await demoFor(t)
  const emulator = demo.emulator as NonNullable<Demo['emulator']>
  const { page, pageErrors, deletes } = await readyPage(t, demo)
  const crash = page.getByRole('button', { name: 'Simulate a crashed tab' })
  t.equal(await crash.isDisabled(), true, 'no call, nothing to crash')

  const firstId = await startACall(t, page)
  t.equal(await crash.isEnabled(), true, 'usable during a call')
  const ended = await pressEndButton(page, 'Simulate a crashed tab', firstId)
  t.equal(ended.status(), 200)
  await page.getByText('The tab "crashed": this page forgot its call without telling the server, and Oshara ended it.').waitFor()
  t.equal(emulator.sessions.get(firstId)?.end_reason, 'tab_crashed', 'the emulator ended it as Oshara would')
  t.same(deletes, [], 'like a crashed tab, the page sent no DELETE')
  for (const selector of SESSION_FIELDS) t.equal(await text(page, selector), 'none yet', `${selector}: the page forgot the call`)

  // The slot was never released by the page, yet Start gets a new call at once.
  const secondId = await startACall(t, page)
  t.not(secondId, firstId, 'a new session')
  t.ok(emulator.sessions.has(secondId) && emulator.sessions.get(secondId)?.ended === false, 'a live one')
  t.equal(await page.locator('#error').isHidden(), true, 'no error')
  t.notMatch(await text(page, '#status'), 'Too many active calls', 'no 429')
  t.same(deletes, [], 'still no DELETE')
  t.same(pageErrors, [], 'no uncaught errors on the page')
}

async function agentHangsUpTest (t: Test): Promise<void> {
  const demo = await demoFor(t)
  const emulator = demo.emulator as NonNullable<Demo['emulator']>
  const { page, pageErrors } = await readyPage(t, demo)
  const table = page.getByRole('table', { name: 'Recent calls' })
  await page.getByText('No ended calls yet.').waitFor()
  t.equal(await table.isHidden(), true, 'an empty panel says so')

  const sessionId = await startACall(t, page)
  const ended = await pressEndButton(page, 'Agent hangs up', sessionId)
  t.equal(ended.status(), 200)
  await page.getByText('The agent hung up: the call ended. Your slot is free: you can start a new call.').waitFor()
  t.equal(emulator.sessions.get(sessionId)?.end_reason, 'agent_hangup')
  t.equal(await text(page, '#connection-text'), 'call ended', 'the page left the room')
  t.equal(await text(page, '#session-id'), 'none yet')
  for (const name of ['End call', 'Agent hangs up', 'Simulate a crashed tab']) {
    t.equal(await page.getByRole('button', { name }).isDisabled(), true, `${name}: no call any more`)
  }
  t.equal(await page.getByRole('button', { name: 'Start call' }).isEnabled(), true)

  // Oshara's summary reaches the panel through onSessionEnd; the page polls for it.
  const row = page.locator(`#recent-rows tr[data-session-id="${sessionId}"]`)
  await row.waitFor({ timeout: 20_000 })
  const summary = await demo.app.oshara.client.getSession(sessionId)
  t.ok(summary.finalized_at, 'finalized')
  const seconds = summary.session_duration_seconds as number
  t.ok(seconds >= 0 && seconds < 60, `a short call (${seconds} s)`)
  const [endedAt, id, duration, cost, transcript] = (await row.locator('td').allTextContents()).map((cell) => cell.trim())
  t.match(endedAt, /\d{1,2}:\d{2}:\d{2}/, 'the end time')
  t.equal(id, sessionId)
  t.equal(duration, `${seconds} s`, 'the duration from the summary')
  t.equal(cost, `$${summary.estimated_cost_usd as string}`, 'the cost from the summary')
  t.match(transcript, /^Agent: Hi Ada! How can I help\?Caller: /, 'the first transcript lines')
  t.equal(await row.locator('.excerpt li').count(), 3)
  t.equal(await table.isVisible(), true)
  t.match(await text(page, '#recent-note'), 'Your last call, newest first.')
  await page.screenshot({ path: new URL('demo-recent-calls.png', ARTIFACTS).pathname, fullPage: true })
  t.same(pageErrors, [], 'no uncaught errors on the page')
}

async function noKeyPanelTest (t: Test): Promise<void> {
  const oshara = await createOsharaEmulator({ characters: [{ slug: 'sales-bot', allowed_origins: ['https://shop.example.com'] }] })
  t.teardown(() => oshara.close())
  const demo = await demoFor(t, { env: { OSHARA_AGENT: 'sales-bot', OSHARA_ORIGIN: 'https://shop.example.com', OSHARA_BASE_URL: oshara.url } })
  const { page, pageErrors } = await readyPage(t, demo)
  await page.getByText('Recent calls need an API key: start the demo with OSHARA_API_KEY set').waitFor()
  await page.getByText('Voice minutes are not counted: like Recent calls, they need OSHARA_API_KEY.').waitFor()
  t.equal(await page.locator('#minutes-meter').isHidden(), true)
  t.equal(await page.getByRole('table', { name: 'Recent calls' }).isHidden(), true)
  t.equal(await page.getByRole('button', { name: 'Agent hangs up' }).isHidden(), true, 'emulator controls: emulator only')
  t.equal(await page.getByRole('button', { name: 'Simulate a crashed tab' }).isHidden(), true)
  t.same(pageErrors, [], 'no uncaught errors on the page')
}

/** The voice minutes line of the page: `figures` is what is left of the budget, e.g. "8.5 of 10 min". */
const MINUTES_LINE = (figures: string): string => `Voice time left today: ${figures} (resets at 00:00 UTC)`

/**
 * Starts a call on the page, ends it at the emulator with `durationSeconds` (as if it had lasted
 * that long), then presses End call; returns the session id.
 */
async function callOfSeconds (t: Test, demo: Demo, page: Page, durationSeconds: number): Promise<string> {
  const emulator = demo.emulator as NonNullable<Demo['emulator']>
  const sessionId = await startACall(t, page)
  t.equal(emulator.endSession(sessionId, { durationSeconds, reason: 'agent_hangup' }), true, `the emulator ends the call after ${durationSeconds} s`)
  await page.getByRole('button', { name: 'End call' }).click()
  await page.getByText('Call ended.').waitFor()
  return sessionId
}

async function minutesLeftTest (t: Test): Promise<void> {
  const demo = await demoFor(t)
  const { page, pageErrors } = await readyPage(t, demo)
  await page.getByText(MINUTES_LINE('10 of 10 min')).waitFor()
  const meter = page.locator('#minutes-meter')
  t.same([await meter.getAttribute('value'), await meter.getAttribute('max')], ['10', '10'], 'the meter: all 10 minutes left')

  // A call of 90 s: once Oshara's summary reaches the plugin, 1.5 minutes are used.
  const sessionId = await callOfSeconds(t, demo, page, 90)
  await page.getByText(MINUTES_LINE('8.5 of 10 min')).waitFor({ timeout: 20_000 })
  t.same([await meter.getAttribute('value'), await meter.getAttribute('max')], ['8.5', '10'], 'the meter shows what is left')
  t.match(await text(page, '#minutes-note'), 'count when it ends')
  const answer = await (await get(`${demo.url}/demo/usage`)).json() as Record<string, unknown>
  t.match(answer, { quota: true, window: 'day', budget: { minutes: 10 }, usage: { sessions: 1, minutes: 1.5, resetsAt: nextMidnightUtc() } }, 'from fastify.oshara.usage()')
  // Refreshed with Recent calls: the same call is listed there with its duration.
  const row = page.locator(`#recent-rows tr[data-session-id="${sessionId}"]`)
  await row.waitFor({ timeout: 20_000 })
  t.equal((await row.locator('td').nth(2).textContent())?.trim(), '1 min 30 s')

  // The next call's reply carries what is left in whole minutes.
  const next = await pressStart(page)
  t.equal(next.status(), 200)
  t.equal(await next.headerValue('ratelimit-policy'), '"minutes";q=10;w=86400')
  t.match(await next.headerValue('ratelimit'), /^"minutes";r=8;t=\d+$/)
  await page.getByText('Could not reach the media server').waitFor()
  t.equal(await text(page, '#minutes-text'), MINUTES_LINE('8.5 of 10 min'), 'a call in progress counts only when it ends')
  await page.screenshot({ path: new URL('demo-minutes.png', ARTIFACTS).pathname, fullPage: true })
  t.same(pageErrors, [], 'no uncaught errors on the page')
}

async function minutesUsedUpTest (t: Test): Promise<void> {
  const demo = await demoFor(t, { env: { DEMO_MINUTES: '1' } })
  const emulator = demo.emulator as NonNullable<Demo['emulator']>
  const { page, pageErrors, deletes } = await readyPage(t, demo)
  await page.getByText(MINUTES_LINE('1 of 1 min')).waitFor()

  // One call of 70 s uses up the minute of the day.
  await callOfSeconds(t, demo, page, 70)
  await page.getByText(MINUTES_LINE('0 of 1 min')).waitFor({ timeout: 20_000 })
  t.equal(await page.getByRole('button', { name: 'Start call' }).isEnabled(), true, 'Start is on: the server decides')
  const mintedBefore = sessionRequests(demo).length
  t.equal(mintedBefore, 1)

  const refused = await pressStart(page)
  t.equal(refused.status(), 429)
  const body = await refused.json() as Record<string, unknown>
  t.match(body, { code: 'FST_OSHARA_QUOTA_EXCEEDED', message: 'You have used up your voice minutes today. Try again later.' })
  const retryAfter = Number(await refused.headerValue('retry-after'))
  t.ok(retryAfter >= 1 && retryAfter <= 86_400, `Retry-After until midnight UTC (${retryAfter} s)`)
  await page.getByText('You have used up your voice minutes today.').waitFor()
  t.match(await text(page, '#status'),
    /^You have used up your voice minutes today\. Try again later\. Start call is available again at 00:00 UTC \(in (\d+ h( \d+ min)?|\d+ min|less than a minute)\)\.$/,
    "the server's message and when the minutes reset")
  t.equal(await page.locator('#status').getAttribute('data-tone'), 'warn', 'a notice, not an error')
  t.equal(await page.locator('#error').isHidden(), true, 'no error line')
  t.equal(await text(page, '#detail'), 'POST /voice-token: 429 FST_OSHARA_QUOTA_EXCEEDED', 'the code in small print')
  const start = page.getByRole('button', { name: 'Start call' })
  t.equal(await start.isDisabled(), true, 'Start stays off until the reset')
  t.equal(await start.getAttribute('title'), 'Your voice minutes are used up for today.', 'and says why')
  // A refresh of the minutes after the refusal still shows none left, and keeps Start off.
  await page.waitForResponse((r) => new URL(r.url()).pathname === '/demo/usage')
  t.equal(await text(page, '#minutes-text'), MINUTES_LINE('0 of 1 min'))
  t.equal(await start.isDisabled(), true)

  t.equal(sessionRequests(demo).length, mintedBefore, 'no session was asked of Oshara')
  t.equal(emulator.sessions.size, 1, 'and none was minted')
  t.equal(deletes.length, 1, 'only the first call was released')
  await page.screenshot({ path: new URL('demo-minutes-used-up.png', ARTIFACTS).pathname, fullPage: true })
  t.same(pageErrors, [], 'no uncaught errors on the page')
}

/** A page on a demo started with DEMO_MINUTES=`minutes`, once its voice minutes line has loaded. */
async function pageWithMinutes (t: Test, browser: Browser, minutes: string): Promise<{ demo: Demo, page: Page, pageErrors: string[] }> {
  const demo = await demoFor(t, { env: { DEMO_MINUTES: minutes } })
  const page = await browser.newPage({ viewport: { width: 960, height: 900 } })
  t.teardown(() => page.close())
  page.setDefaultTimeout(10_000)
  const pageErrors: string[] = []
  page.on('pageerror', (error) => { pageErrors.push(error.message) })
  await page.goto(demo.url)
  // The line reads "Voice time left today: …" until GET /demo/usage answers.
  await page.locator('#minutes-text').filter({ hasNotText: '…' }).waitFor()
  return { demo, page, pageErrors }
}

async function smallBudgetsTest (t: Test): Promise<void> {
  const browser = await launchChromium(t)
  const start = (page: Page) => page.getByRole('button', { name: 'Start call' })

  // A quarter of a minute reads as 15 seconds, not "0 of 0": and a call of 10 s leaves 5 of them.
  {
    const { demo, page, pageErrors } = await pageWithMinutes(t, browser, '0.25')
    t.equal(await text(page, '#minutes-text'), MINUTES_LINE('15 of 15 s'), 'DEMO_MINUTES=0.25: 15 s')
    t.equal(await page.locator('#minutes-meter').isVisible(), true)
    t.equal(await start(page).isEnabled(), true)
    await page.getByText('Ready. Press Start call').waitFor()
    await callOfSeconds(t, demo, page, 10)
    await page.getByText(MINUTES_LINE('5 of 15 s')).waitFor({ timeout: 20_000 })
    t.same(pageErrors, [], 'no uncaught errors on the page')
  }

  // 0.05 minutes: 3 seconds.
  {
    const { page, pageErrors } = await pageWithMinutes(t, browser, '0.05')
    t.equal(await text(page, '#minutes-text'), MINUTES_LINE('3 of 3 s'), 'DEMO_MINUTES=0.05: 3 s')
    t.equal(await start(page).isEnabled(), true)
    t.same(pageErrors, [], 'no uncaught errors on the page')
  }

  // Less than a minute left of a budget in minutes reads in seconds, not 0.
  {
    const { demo, page, pageErrors } = await pageWithMinutes(t, browser, '1')
    await page.getByText('Ready. Press Start call').waitFor()
    await callOfSeconds(t, demo, page, 57)
    await page.getByText(MINUTES_LINE('3 s of 1 min')).waitFor({ timeout: 20_000 })
    t.equal(await start(page).isEnabled(), true, 'there is time left')
    t.same(pageErrors, [], 'no uncaught errors on the page')
  }

  // A budget of 0: Start call is off from the start, and the page says why.
  {
    const { demo, page, pageErrors } = await pageWithMinutes(t, browser, '0')
    await page.locator('#status', { hasText: 'Start call is off' }).waitFor()
    t.equal(await text(page, '#minutes-text'), "No voice minutes today: this demo's daily budget is 0 (DEMO_MINUTES=0).")
    t.equal(await text(page, '#status'), 'Start call is off: there are no voice minutes to use today. Restart the demo with some, e.g. DEMO_MINUTES=10 npm start.')
    t.equal(await page.locator('#status').getAttribute('data-tone'), 'warn')
    t.equal(await start(page).isDisabled(), true, 'Start call is off')
    t.equal(await start(page).getAttribute('title'), 'This demo gives no voice minutes today (DEMO_MINUTES=0).', 'and says why')
    t.equal(await page.locator('#minutes-meter').isHidden(), true, 'no empty meter')
    t.notMatch(await page.locator('main').innerText(), /\b0 of 0\b/, 'never "0 of 0"')
    // The next poll keeps it so.
    await page.waitForResponse((r) => new URL(r.url()).pathname === '/demo/usage')
    t.equal(await start(page).isDisabled(), true)
    // The server agrees: no call without minutes.
    const refused = await get(`${demo.url}/voice-token`, { method: 'POST' })
    t.equal(refused.status, 429)
    t.equal((await refused.json() as Record<string, unknown>).code, 'FST_OSHARA_QUOTA_EXCEEDED')
    t.equal(sessionRequests(demo).length, 0, 'no session was asked of Oshara')
    await page.screenshot({ path: new URL('demo-no-minutes.png', ARTIFACTS).pathname, fullPage: true })
    t.same(pageErrors, [], 'no uncaught errors on the page')
  }
}

async function agentToolsTest (t: Test): Promise<void> {
  const demo = await demoFor(t)
  const { page, pageErrors } = await readyPage(t, demo)
  const lookup = page.getByRole('button', { name: 'Agent looks up your order' })
  const forge = page.getByRole('button', { name: 'Forged call as another user' })
  t.equal(await lookup.isDisabled(), true, 'no call, no agent to call the tool')
  t.equal(await forge.isEnabled(), true, 'a forged session needs no call of ours')

  const sessionId = await startACall(t, page)
  t.equal(await lookup.isEnabled(), true, 'usable during a call')
  const [looked] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === `/demo/sessions/${sessionId}/lookup-order`),
    lookup.click()
  ])
  t.equal(looked.status(), 200)
  await page.getByText('The agent called lookup_order(A-1001): Noise-cancelling headset, shipped, arriving Thursday. ' +
    'The app answered for Ada Demo: the user in the session\'s signed metadata.').waitFor()
  t.equal(await page.locator('#tool-result').getAttribute('data-tone'), 'ok')

  await forge.click()
  await page.getByText('Forged call refused: a session minted around this app, claiming to be Someone Else, asked for order B-2002 ' +
    'with the right secret and got 403 FST_OSHARA_TOOL_FORBIDDEN (This call was not started by this app.).').waitFor()
  t.same(demo.app.oshara.stats().tools, { lookup_order: { ok: 1, forbidden: 1 } })

  await page.getByRole('button', { name: 'End call' }).click()
  await page.getByText('Call ended. Your slot is free: you can start a new call.').waitFor()
  t.equal(await lookup.isDisabled(), true, 'the call is over')
  t.same(pageErrors, [], 'no uncaught errors on the page')
}
