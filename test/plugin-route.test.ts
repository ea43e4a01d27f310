import t from 'tap'
import Fastify from 'fastify'
import osharaVoice from '../lib/index.js'
import { buildApp, postToken } from './helpers/app.js'
import { API_KEY, closedPort, ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'
import { verifyToken } from '../lib/emulator/jwt.js'

// The voice-token route end to end, and every row of the SPEC section 4 error table.

t.test('the seed flow over real HTTP: auth preHandler + metadata extractor', async (t) => {
  const emulator = await startEmulator(t)
  const app = Fastify()
  app.decorateRequest('user', null)
  await app.register(osharaVoice, {
    origin: ORIGIN,
    agent: 'support-bot',
    baseUrl: emulator.url,
    apiKey: API_KEY,
    routeOptions: {
      preHandler: async (request, reply) => {
        if (request.headers.authorization !== 'Bearer good') return reply.code(401).send({ error: 'login first' })
        ;(request as unknown as { user: unknown }).user = { id: 'u-42', email: 'ann@example.com', plan: 'pro', orgId: 'org-7' }
      }
    },
    metadata: (request) => {
      const user = (request as unknown as { user: { id: string, email: string, plan: string, orgId: string } }).user
      return { user_id: user.id, user_email: user.email, account_tier: user.plan, org_id: user.orgId }
    }
  })
  t.teardown(() => app.close())
  const url = await app.listen({ port: 0, host: '127.0.0.1' })

  const anonymous = await fetch(`${url}/voice-token`, { method: 'POST' })
  t.equal(anonymous.status, 401, 'auth runs before anything reaches Oshara')
  t.equal(sessionRequests(emulator).length, 0)

  const response = await fetch(`${url}/voice-token`, {
    method: 'POST',
    headers: { authorization: 'Bearer good', 'content-type': 'application/json' },
    body: JSON.stringify({ language: 'fr' })
  })
  t.equal(response.status, 200)
  t.equal(response.headers.get('cache-control'), 'no-store')
  const reply = await response.json() as Record<string, unknown>
  t.same(Object.keys(reply).sort(), ['expires_in_seconds', 'livekit_url', 'participant_identity', 'participant_token', 'room_name', 'server_url', 'session_id', 'token'])
  t.equal(reply.server_url, reply.livekit_url)
  t.equal(reply.participant_token, reply.token)
  t.notOk('system_prompt' in reply, 'the effective system prompt never reaches the browser')

  const [upstream] = sessionRequests(emulator)
  t.same(upstream?.body, {
    agent: 'support-bot',
    language: 'fr',
    metadata: { user_id: 'u-42', user_email: 'ann@example.com', account_tier: 'pro', org_id: 'org-7' }
  }, 'exactly { agent, language, metadata }')
  t.equal(upstream?.headers.origin, ORIGIN)
  t.equal(upstream?.headers['x-api-key'], API_KEY)
  const claims = verifyToken(reply.token as string, 'secret')
  t.match(claims, { sub: reply.participant_identity, video: { room: reply.room_name, roomJoin: true } })
})

t.test('no body at all is fine: the server decides everything', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  const response = await postToken(app)
  t.equal(response.statusCode, 200)
  t.same(sessionRequests(emulator)[0]?.body, { agent: 'support-bot' })
})

t.test('the response option reshapes the reply (no schema strips it)', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { response: (session) => ({ token: session.token, url: session.livekit_url, greeting: session.greeting }) })
  const response = await postToken(app, {})
  t.equal(response.statusCode, 200)
  t.same(Object.keys(response.json()).sort(), ['greeting', 'token', 'url'])
  t.equal(response.headers['cache-control'], 'no-store')
})

const upstreamRows: Array<[string, object, number, string, string | undefined]> = [
  ['upstream 429 with Retry-After', { status: 429, headers: { 'retry-after': '12' } }, 429, 'FST_OSHARA_UPSTREAM_LIMIT', '12'],
  ['upstream 429 without Retry-After', { status: 429 }, 429, 'FST_OSHARA_UPSTREAM_LIMIT', '5'],
  ['upstream 403', { status: 403 }, 502, 'FST_OSHARA_ORIGIN_FORBIDDEN', undefined],
  ['upstream 404', { status: 404 }, 502, 'FST_OSHARA_AGENT_NOT_FOUND', undefined],
  ['upstream 401', { status: 401 }, 502, 'FST_OSHARA_UNAUTHORIZED', undefined],
  ['other upstream 4xx', { status: 422 }, 502, 'FST_OSHARA_REQUEST_REJECTED', undefined],
  ['upstream 5xx', { status: 500 }, 502, 'FST_OSHARA_UPSTREAM_ERROR', undefined],
  ['upstream 2xx that is not a session', { malformed: true }, 502, 'FST_OSHARA_BAD_RESPONSE', undefined],
  ['per-attempt timeout', { delayMs: 1000 }, 504, 'FST_OSHARA_TIMEOUT', undefined]
]

for (const [name, fault, status, code, retryAfter] of upstreamRows) {
  t.test(`${name} -> ${status} ${code}`, async (t) => {
    const emulator = await startEmulator(t)
    const app = await buildApp(t, emulator, { timeoutMs: 100, retry: false })
    emulator.fault(fault)
    const response = await postToken(app, {})
    t.equal(response.statusCode, status)
    const body = response.json()
    t.equal(body.code, code)
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
    t.equal(response.headers['retry-after'], retryAfter)
    t.notMatch(body.message, /Injected|detail/, 'the upstream detail stays in the log')
  })
}

t.test('upstream 503 after retries -> 502 FST_OSHARA_UPSTREAM_ERROR', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  emulator.fault({ status: 503 }, 3)
  const response = await postToken(app, {})
  t.equal(response.statusCode, 502)
  t.equal(response.json().code, 'FST_OSHARA_UPSTREAM_ERROR')
  t.equal(sessionRequests(emulator).length, 3)
})

t.test('upstream 503 asking for longer than maxRetryAfterMs -> 502 FST_OSHARA_UPSTREAM_ERROR with its Retry-After, at once', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  emulator.fault({ status: 503, headers: { 'retry-after': '30' } })
  const response = await postToken(app, {})
  t.equal(response.statusCode, 502)
  t.equal(response.json().code, 'FST_OSHARA_UPSTREAM_ERROR')
  t.equal(response.headers['retry-after'], '30', 'the browser learns when to try again')
  t.equal(sessionRequests(emulator).length, 1, 'not retried: the delay is over maxRetryAfterMs')
})

t.test('upstream unreachable after retries -> 503 FST_OSHARA_UNAVAILABLE with Retry-After', async (t) => {
  const app = Fastify()
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'a', baseUrl: `http://127.0.0.1:${await closedPort()}`, retry: { minDelayMs: 1, maxDelayMs: 2 } })
  t.teardown(() => app.close())
  const response = await postToken(app, {})
  t.equal(response.statusCode, 503)
  t.equal(response.json().code, 'FST_OSHARA_UNAVAILABLE')
  t.equal(response.headers['retry-after'], '5')
})

t.test('breaker open -> 503 FST_OSHARA_UNAVAILABLE with Retry-After = the cooldown left', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { retry: false, breaker: { failureThreshold: 1, cooldownMs: 30000 } })
  emulator.fault({ status: 500 })
  t.equal((await postToken(app, {})).statusCode, 502)
  const response = await postToken(app, {})
  t.equal(response.statusCode, 503)
  t.equal(response.json().code, 'FST_OSHARA_UNAVAILABLE')
  t.ok(Number(response.headers['retry-after']) >= 29 && Number(response.headers['retry-after']) <= 30)
})

t.test('deadline passed -> 504 FST_OSHARA_TIMEOUT', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { timeoutMs: 5000, deadlineMs: 150 })
  emulator.fault({ delayMs: 1000 })
  const response = await postToken(app, {})
  t.equal(response.statusCode, 504)
  t.equal(response.json().code, 'FST_OSHARA_TIMEOUT')
})

t.test('two registrations side by side: two characters on two paths', async (t) => {
  const emulator = await startEmulator(t)
  const app = Fastify()
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', baseUrl: emulator.url, path: '/support/voice-token', decorator: 'support' })
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'sales-bot', baseUrl: emulator.url, path: '/sales/voice-token', decorator: 'sales' })
  t.teardown(() => app.close())
  t.equal((await app.inject({ method: 'POST', url: '/support/voice-token' })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/sales/voice-token' })).statusCode, 200)
  t.same(sessionRequests(emulator).map((request) => (request.body as { agent: string }).agent), ['support-bot', 'sales-bot'])
  t.ok(app.hasDecorator('support') && app.hasDecorator('sales') && !app.hasDecorator('oshara'))
})
