import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import { createOsharaClient } from '../lib/client/client.js'
import type { OsharaClientOptions } from '../lib/client/options.js'
import type { SessionOverrides } from '../lib/client/schemas.js'
import { OsharaError } from '../lib/errors.js'
import { buildApp, postToken } from './helpers/app.js'
import { API_KEY, closedPort, failure, ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'

// Each upstream outcome maps to exactly one code, status and outcome (SPEC sections 4 and 5).

const body = { agent: 'support-bot', language: 'en', metadata: { user_id: 'u1' } }

async function setup (t: Test, options: Partial<OsharaClientOptions> = {}) {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: false, breaker: false, ...options })
  t.teardown(() => client.close())
  return { emulator, client }
}

t.test('200: the full upstream session', async (t) => {
  const { client } = await setup(t)
  const session = await client.createSession(body)
  t.match(session, {
    token: /^ey/,
    livekit_url: String,
    session_id: /^sess_/,
    room_name: /^oshara-voice-support-bot-/,
    participant_identity: String,
    expires_in_seconds: 3600,
    character_slug: 'support-bot',
    system_prompt: 'You are a helpful support agent.'
  })
})

t.test('2xx without expires_in_seconds gets the documented default of 3600', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 200, body: { token: 'a.b.c', livekit_url: 'ws://x', session_id: 's1', room_name: 'r', participant_identity: 'p' } })
  t.equal((await client.createSession(body)).expires_in_seconds, 3600)
})

const statusCases: Array<[number, string, number, 'not_created' | 'unknown']> = [
  [400, 'FST_OSHARA_REQUEST_REJECTED', 502, 'not_created'],
  [401, 'FST_OSHARA_UNAUTHORIZED', 502, 'not_created'],
  [403, 'FST_OSHARA_ORIGIN_FORBIDDEN', 502, 'not_created'],
  [404, 'FST_OSHARA_AGENT_NOT_FOUND', 502, 'not_created'],
  [409, 'FST_OSHARA_REQUEST_REJECTED', 502, 'not_created'],
  [500, 'FST_OSHARA_UPSTREAM_ERROR', 502, 'unknown'],
  [502, 'FST_OSHARA_UPSTREAM_ERROR', 502, 'unknown'],
  [503, 'FST_OSHARA_UPSTREAM_ERROR', 502, 'not_created'],
  [504, 'FST_OSHARA_UPSTREAM_ERROR', 502, 'unknown'],
  [302, 'FST_OSHARA_BAD_RESPONSE', 502, 'unknown']
]

for (const [status, code, statusCode, outcome] of statusCases) {
  t.test(`upstream ${status} -> ${code}`, async (t) => {
    const { emulator, client } = await setup(t)
    emulator.fault({ status, body: { detail: `injected ${status}` } })
    const error = await failure(client.createSession(body))
    t.match(error, { code, statusCode, outcome, upstreamStatus: status, attempts: 1, requestId: String, detail: `injected ${status}` })
    t.ok(error instanceof OsharaError)
  })
}

t.test('real upstream refusals carry the fix for the operator', async (t) => {
  const { client } = await setup(t)
  t.match(await failure(client.createSession({ agent: 'nobody' })), { code: 'FST_OSHARA_AGENT_NOT_FOUND', upstreamStatus: 404, fix: /agent slug/ })
  const stranger = createOsharaClient({ origin: 'https://evil.example.com', baseUrl: (await startEmulator(t)).url, retry: false })
  t.teardown(() => stranger.close())
  t.match(await failure(stranger.createSession(body)), { code: 'FST_OSHARA_ORIGIN_FORBIDDEN', upstreamStatus: 403, fix: /https:\/\/evil\.example\.com.*allowed_origins/ })
  const wrongKey = createOsharaClient({ origin: ORIGIN, baseUrl: (await startEmulator(t)).url, apiKey: 'sk_wrong', retry: false })
  t.teardown(() => wrongKey.close())
  t.match(await failure(wrongKey.createSession(body)), { code: 'FST_OSHARA_UNAUTHORIZED', upstreamStatus: 401, fix: /apiKey/ })
})

t.test('upstream 429 -> FST_OSHARA_UPSTREAM_LIMIT with its Retry-After, else 5 s', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 429, headers: { 'retry-after': '7' } })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_LIMIT', statusCode: 429, retryAfterMs: 7000, outcome: 'not_created' })
  emulator.fault({ status: 429 })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_LIMIT', retryAfterMs: 5000 })
})

t.test('the emulator\'s own concurrency limit is an upstream 429', async (t) => {
  const emulator = await startEmulator(t, { characters: [{ slug: 'one', allowed_origins: [ORIGIN], max_concurrent_sessions: 1 }] })
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url })
  t.teardown(() => client.close())
  const first = await client.createSession({ agent: 'one' })
  t.match(await failure(client.createSession({ agent: 'one' })), { code: 'FST_OSHARA_UPSTREAM_LIMIT', attempts: 1 })
  emulator.endSession(first.session_id)
  t.ok(await client.createSession({ agent: 'one' }))
})

t.test('malformed JSON, a session without token, a non-object -> FST_OSHARA_BAD_RESPONSE', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ malformed: true })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_BAD_RESPONSE', statusCode: 502, outcome: 'unknown', detail: /not JSON/ })
  emulator.fault({ status: 200, body: { livekit_url: 'ws://x', session_id: 's', room_name: 'r', participant_identity: 'p' } })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /token/ })
  emulator.fault({ status: 201, body: 'null' })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_BAD_RESPONSE', upstreamStatus: 201 })
})

t.test('an upstream 204 (no body at all) -> FST_OSHARA_BAD_RESPONSE, not a connection failure', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 204 })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_BAD_RESPONSE', statusCode: 502, upstreamStatus: 204, attempts: 1 })
})

t.test('a body over 1 MiB is not read -> FST_OSHARA_BAD_RESPONSE', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ oversizedBytes: 2 * 1024 * 1024 })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /1 MiB/ })
})

t.test('a chunked body (no content-length) is read in chunks and cut off over 1 MiB', async (t) => {
  let calls = 0
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    if (++calls === 1) {
      const chunk = Buffer.alloc(256 * 1024, 0x20)
      for (let i = 0; i < 5; i++) res.write(chunk)
      res.end()
      return
    }
    res.write('{"token":"a.b.c","livekit_url":"ws://x",')
    res.end('"session_id":"s1","room_name":"r","participant_identity":"p"}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}`, retry: false })
  t.teardown(() => client.close())
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /1 MiB/ })
  t.match(await client.createSession(body), { session_id: 's1', expires_in_seconds: 3600 })
})

t.test('an error body over 1 MiB is not read either', async (t) => {
  const server = createServer((_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain', 'content-length': String(2 * 1024 * 1024) })
    res.end(Buffer.alloc(2 * 1024 * 1024, 0x61))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}`, retry: false })
  t.teardown(() => client.close())
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_ERROR', upstreamStatus: 500, detail: '' })
})

t.test('an error body that is plain text is kept as the detail', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 400, body: 'Bad things' })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_REQUEST_REJECTED', detail: 'Bad things' })
  emulator.fault({ status: 400, body: { errors: { agent: ['required'] } } })
  t.match(await failure(client.createSession(body)), { detail: '{"errors":{"agent":["required"]}}' })
  emulator.fault({ status: 400, body: { message: { field: 'agent' } } })
  t.match(await failure(client.createSession(body)), { detail: '{"field":"agent"}' })
})

t.test('connection refused -> FST_OSHARA_UNAVAILABLE, not_created, 503', async (t) => {
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: `http://127.0.0.1:${await closedPort()}`, retry: false })
  t.teardown(() => client.close())
  t.match(await failure(client.createSession(body)), {
    code: 'FST_OSHARA_UNAVAILABLE', statusCode: 503, outcome: 'not_created', retryAfterMs: 5000, detail: 'ECONNREFUSED', attempts: 1
  })
})

t.test('a TLS failure is not_created too', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url.replace('http:', 'https:'), retry: false })
  t.teardown(() => client.close())
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UNAVAILABLE', outcome: 'not_created', detail: /^ERR_SSL_/ })
})

t.test('connection reset before the response -> FST_OSHARA_UNAVAILABLE, unknown', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ reset: true })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UNAVAILABLE', statusCode: 503, outcome: 'unknown', attempts: 1 })
})

t.test('slow headers -> FST_OSHARA_TIMEOUT after timeoutMs', async (t) => {
  const { emulator, client } = await setup(t, { timeoutMs: 100 })
  emulator.fault({ delayMs: 1000 })
  const started = Date.now()
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_TIMEOUT', statusCode: 504, outcome: 'unknown', attempts: 1 })
  t.ok(Date.now() - started < 600, 'ends near timeoutMs, not when the upstream answers')
})

t.test('slow body -> FST_OSHARA_TIMEOUT: the timeout covers reading the body', async (t) => {
  const { emulator, client } = await setup(t, { timeoutMs: 150 })
  emulator.fault({ slowBodyMs: 1000 })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_TIMEOUT', outcome: 'unknown' })
})

t.test('an invalid session request is refused before any network call', async (t) => {
  const { emulator, client } = await setup(t)
  t.match(await failure(client.createSession({ agent: '' })), { code: 'FST_OSHARA_INVALID_SESSION', statusCode: 500, message: /agent/ })
  t.match(await failure(client.createSession({ agent: 'a', language: 5 } as never)), { message: /language/ })
  t.match(await failure(client.createSession({ agent: 'a', surprise: 1 } as never)), { code: 'FST_OSHARA_INVALID_SESSION' })
  t.match(await failure(client.createSession(null as never)), { code: 'FST_OSHARA_INVALID_SESSION', message: /body/ })
  t.equal(emulator.requests.length, 0)
})

t.test('metadata JSON cannot carry (a BigInt, a cycle): FST_OSHARA_INVALID_SESSION with a safe message, the problem and the fix, before any network call', async (t) => {
  const { emulator, client } = await setup(t)
  const cycle: Record<string, unknown> = { user_id: 'u' }
  cycle.self = cycle
  const bigint = await failure(client.createSession({ agent: 'support-bot', metadata: { n: 10n } }))
  t.match(bigint, {
    code: 'FST_OSHARA_INVALID_SESSION',
    statusCode: 500,
    outcome: 'not_created',
    message: 'The voice session could not be prepared',
    detail: 'the session request cannot be sent as JSON: Do not know how to serialize a BigInt',
    fix: /metadata .* plain JSON data: no BigInt/,
    cause: { name: 'TypeError' }
  })
  t.match(await failure(client.createSession({ agent: 'support-bot', metadata: cycle })), { code: 'FST_OSHARA_INVALID_SESSION', detail: /Converting circular structure to JSON/ })
  t.equal(emulator.requests.length, 0)
})

t.test('language must be a BCP-47 tag of at most 35 characters; the message never holds the value', async (t) => {
  const { emulator, client } = await setup(t)
  for (const language of ['SECRETVAL 9', 'en_US', 'e', `en-${'abcdefgh-'.repeat(4)}x`]) {
    const error = await failure(client.createSession({ agent: 'support-bot', language }))
    t.match(error, { code: 'FST_OSHARA_INVALID_SESSION', message: 'invalid session request: language is not a BCP-47 language tag of at most 35 characters' }, language)
  }
  t.equal(emulator.requests.length, 0)
  for (const language of ['en', 'pt-BR', 'zh-Hant-TW', 'sr-Latn-RS']) await client.createSession({ agent: 'support-bot', language })
  t.same(sessionRequests(emulator).map((request) => (request.body as { language: string }).language), ['en', 'pt-BR', 'zh-Hant-TW', 'sr-Latn-RS'])
})

t.test('mcp_headers names must be HTTP tokens and values free of CR, LF, NUL and other controls', async (t) => {
  const { emulator, client } = await setup(t)
  const refused: Array<[Record<string, string>, RegExp]> = [
    [{ 'X-Foo': 'a\r\nInjected: 1' }, /mcp_headers "X-Foo" value holds a control character/],
    [{ 'X-Foo': 'a\nb' }, /"X-Foo"/],
    [{ 'X-Foo': 'a\u0000b' }, /"X-Foo"/],
    [{ 'X-Foo': 'a\u001bb' }, /"X-Foo"/],
    [{ 'X-Foo': 'a\u007fb' }, /"X-Foo"/],
    [{ 'Bad Name': 'v' }, /mcp_headers name "Bad Name" is not an HTTP header name/],
    [{ 'X-Foo:': 'v' }, /"X-Foo:"/],
    [{ '': 'v' }, /mcp_headers name is not an HTTP header name/],
    [{ 'X-Bad\r\nInjected': 'v' }, /^invalid session request: mcp_headers name is not an HTTP header name/]
  ]
  for (const [headers, message] of refused) {
    const error = await failure(client.createSession({ agent: 'support-bot', mcp_headers: headers }))
    t.match(error, { code: 'FST_OSHARA_INVALID_SESSION', statusCode: 500, message }, JSON.stringify(headers))
    t.notOk(['Injected', '\r', '\n', '\u0000'].some((text) => error.message.includes(text)), 'never the value, nor a name that is not printable')
  }
  t.equal(emulator.requests.length, 0, 'nothing reached Oshara')

  // HTAB and non-ASCII text are allowed in values; every token character in names.
  const allowed = { "!#$%&'*+-.^_`|~09azAZ": 'a\tb', authorization: 'Bearer café' }
  await client.createSession({ agent: 'support-bot', mcp_headers: allowed })
  t.same(sessionRequests(emulator)[0]?.body, { agent: 'support-bot', mcp_headers: allowed })
})

t.test('mcp_headers from the session option with CR/LF or a bad name: 500 FST_OSHARA_INVALID_SESSION, no upstream request', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    session: (request): SessionOverrides => ({
      mcp_headers: request.headers['x-case'] === 'name' ? { 'Bad Name': 'v' } : { 'X-Foo': 'a\r\nInjected: 1' }
    })
  })
  for (const which of ['value', 'name']) {
    const reply = await postToken(app, undefined, { 'x-case': which })
    t.equal(reply.statusCode, 500, which)
    t.equal(reply.json().code, 'FST_OSHARA_INVALID_SESSION')
    t.notMatch(reply.body, /Injected/)
  }
  t.equal(sessionRequests(emulator).length, 0, 'no upstream request was made')
})

t.test('only set fields are sent, with the documented headers', async (t) => {
  const { emulator, client } = await setup(t, { apiKey: API_KEY })
  await client.createSession({ agent: 'support-bot', language: undefined, metadata: { plan: 'pro' } })
  const [request] = emulator.requests
  t.same(request?.body, { agent: 'support-bot', metadata: { plan: 'pro' } })
  t.match(request?.headers, {
    'content-type': 'application/json',
    accept: 'application/json',
    origin: ORIGIN,
    'user-agent': /^fastify-oshara-voice\/\d+\.\d+\.\d+/,
    'x-request-id': /^[0-9a-f-]{36}$/,
    'x-api-key': API_KEY
  })
})

t.test('getSession reads the billing summary behind X-API-Key', async (t) => {
  const { client } = await setup(t, { apiKey: API_KEY })
  const session = await client.createSession(body)
  const summary = await client.getSession(session.session_id)
  t.match(summary, { session_id: session.session_id, character_slug: 'support-bot', metadata: { user_id: 'u1' } })
  t.match(await failure(client.getSession('sess_missing')), { code: 'FST_OSHARA_SESSION_NOT_FOUND', statusCode: 404, upstreamStatus: 404 })
  t.match(await failure(client.getSession('')), { code: 'FST_OSHARA_INVALID_SESSION' })
})

t.test('getSession without a key -> FST_OSHARA_UNAUTHORIZED; a bad envelope -> FST_OSHARA_BAD_RESPONSE', async (t) => {
  const emulator = await startEmulator(t)
  const noKey = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: false })
  t.teardown(() => noKey.close())
  t.match(await failure(noKey.getSession('sess_x')), { code: 'FST_OSHARA_UNAUTHORIZED' })
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(req.url?.includes('text') === true ? 'nope' : JSON.stringify({ success: false, data: null }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}`, retry: false })
  t.teardown(() => client.close())
  t.match(await failure(client.getSession('s1')), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /envelope/ })
  t.match(await failure(client.getSession('text')), { code: 'FST_OSHARA_BAD_RESPONSE', detail: /not JSON/ })
})

t.test('a baseUrl path prefix is kept', async (t) => {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/proxy/oshara/api/agents/agent-session/' ? 418 : 500).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/proxy/oshara/`, retry: false })
  t.teardown(() => client.close())
  t.match(await failure(client.createSession(body)), { upstreamStatus: 418 })
})

t.test('a closed client refuses calls without touching the network', async (t) => {
  const { emulator, client } = await setup(t)
  await client.close()
  await client.close()
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UNAVAILABLE', attempts: 0 })
  t.equal(emulator.requests.length, 0)
})
