import t from 'tap'
import { inspect } from 'node:util'
import { createOsharaClient } from '../lib/client/client.js'
import type { OsharaError } from '../lib/errors.js'
import { buildApp, logCapture, postToken } from './helpers/app.js'
import { API_KEY, failure, ORIGIN, recordingLogger, sessionRequests, startEmulator } from './helpers/emulator.js'

// SPEC section 9: the API key, metadata values and mcp_headers values are never logged, even when
// an upstream error body echoes what it was sent; the upstream detail is bounded in length.

const since = new Date('2026-01-02T03:04:05.678Z')
const metadata = {
  user_id: 'user-8c1f-secret',
  email: 'ann.secret@example.com',
  profile: { phone: '+1 (555) 0100-77*', tags: ['tag-secret-1'], account: 987654321 },
  note: 'line one\n"quoted secret"',
  since,
  plan: 'pro',
  beta: true
}
const mcpHeaders = { authorization: 'Bearer mcp-secret-value-123', 'X-Tenant': 'tenant-secret-42' }

/** Every value that must not be logged, in the forms a log line could hold it. */
const secrets = [
  API_KEY, metadata.user_id, metadata.email, metadata.profile.phone, 'tag-secret-1', '987654321',
  'quoted secret', since.toISOString(), mcpHeaders.authorization, mcpHeaders['X-Tenant']
]

/** Upstream error bodies that echo the request: JSON with a string detail, JSON with an object detail, plain text. */
const echoes: Array<[string, unknown]> = [
  ['a JSON detail string', { detail: `Invalid request: ${JSON.stringify({ api_key: API_KEY, metadata, mcp_headers: mcpHeaders })}` }],
  ['a JSON detail object', { detail: { headers: { 'x-api-key': API_KEY }, body: { metadata, mcp_headers: mcpHeaders } } }],
  ['a text body', `Bad request with key ${API_KEY} for ${metadata.email} (${metadata.user_id}, ${metadata.profile.phone}, ${metadata.note}); mcp ${mcpHeaders.authorization}`]
]

function leaks (text: string): string[] {
  return secrets.filter((secret) => text.includes(secret) || text.includes(JSON.stringify(secret).slice(1, -1)))
}

t.test('upstream error text that echoes the request is redacted and bounded: createOsharaClient', async (t) => {
  const emulator = await startEmulator(t)
  const logger = recordingLogger()
  const client = createOsharaClient({
    origin: ORIGIN, baseUrl: emulator.url, apiKey: API_KEY, logger, breaker: false, retry: { minDelayMs: 1, maxDelayMs: 2 }
  })
  t.teardown(() => client.close())
  for (const [name, echo] of echoes) {
    for (const status of [400, 500]) {
      t.test(`${status} with ${name}`, async (t) => {
        logger.lines.length = 0
        emulator.fault({ status: 503, body: echo })
        emulator.fault({ status, body: echo })
        const error = await failure(client.createSession({ agent: 'support-bot', metadata, mcp_headers: mcpHeaders }))
        t.match(error, { upstreamStatus: status, attempts: 2 })
        t.match(error.detail, /\[redacted\]/, 'the echo was there, and was redacted')
        t.ok((error.detail as string).length <= 201, `bounded (${(error.detail as string).length})`)
        t.same(leaks(inspect(error, { depth: 5 })), [], 'the error as a logger prints it')
        t.same(leaks(JSON.stringify(error)), [])
        t.ok(logger.lines.some((line) => line.message === 'oshara: retrying upstream call'), 'the retry warn line was written')
        t.same(leaks(JSON.stringify(logger.lines)), [], 'the client\'s own log lines')
      })
    }
  }
  t.test('keys and short values stay readable', async (t) => {
    emulator.fault({ status: 400, body: echoes[1]?.[1] })
    const error = await failure(client.createSession({ agent: 'support-bot', metadata, mcp_headers: mcpHeaders }))
    t.match(error.detail, /"email":"\[redacted\]"/)
    t.match(error.detail, /"x-api-key":"\[redacted\]"/)
  })
})

t.test('the upstream detail is cut at 200 characters, after redaction', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, apiKey: API_KEY, retry: false, breaker: false })
  t.teardown(() => client.close())
  emulator.fault({ status: 400, body: 'x'.repeat(5000) })
  const long = await failure(client.createSession({ agent: 'support-bot' }))
  t.equal(long.detail, `${'x'.repeat(200)}…`)
  emulator.fault({ status: 400, body: { detail: `${'x'.repeat(195)}${API_KEY}${API_KEY}` } })
  const straddling = await failure(client.createSession({ agent: 'support-bot' }))
  t.equal(straddling.detail, `${'x'.repeat(195)}[reda…`, 'a key across the cut leaves no part of itself')
  emulator.fault({ status: 400, body: { detail: 'short' } })
  t.equal((await failure(client.createSession({ agent: 'support-bot' }))).detail, 'short')
})

t.test('a billing lookup error is redacted too', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: `${emulator.url}/no-such-prefix`, apiKey: API_KEY, retry: false, breaker: false })
  t.teardown(() => client.close())
  const error = await failure(client.getSession('sess_1'))
  t.equal(error.upstreamStatus, 404)
  t.same(leaks(inspect(error)), [])
})

t.test('upstream error text that echoes the request is redacted and bounded: the plugin route', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    metadata: () => metadata,
    session: () => ({ mcp_headers: mcpHeaders })
  }, { logger: { level: 'trace', stream: capture.stream } })

  for (const [, echo] of echoes) {
    for (const status of [400, 403, 404, 500]) {
      emulator.fault({ status: 503, body: echo })
      emulator.fault({ status, body: echo })
      t.equal((await postToken(app)).statusCode, 502)
    }
  }
  t.equal(sessionRequests(emulator).length, 24)
  const text = capture.text()
  t.match(text, /\[redacted\]/, 'the upstream detail was logged, redacted')
  t.same(leaks(text), [], 'no log line holds a secret')
  const details = capture.lines().flatMap((line) => [line.detail, (line.err as { detail?: unknown } | undefined)?.detail])
    .filter((detail): detail is string => typeof detail === 'string')
  t.ok(details.length >= 12, `the detail of each of the 12 failures is logged (${details.length} times)`)
  t.ok(details.every((detail) => detail.length <= 201), 'every logged detail is bounded')
  t.ok(capture.lines().some((line) => line.msg === 'oshara: retrying upstream call'), 'the retry warn lines are in the capture')
})

// The error's `detail` is enumerable: Fastify's own error line logs it; it must be clean when built.
t.test('an OsharaError detail never holds a secret when the error leaves the client', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, apiKey: API_KEY, retry: false, breaker: false })
  t.teardown(() => client.close())
  emulator.fault({ status: 401, body: { detail: `Invalid API key: ${API_KEY}` } })
  const error: OsharaError = await failure(client.createSession({ agent: 'support-bot' }))
  t.equal(error.detail, 'Invalid API key: [redacted]')
  t.ok(Object.keys(error).includes('detail'), 'detail is enumerable, so loggers print it')
})
