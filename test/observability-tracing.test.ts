import t, { type Test } from 'tap'
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import Fastify from 'fastify'
import osharaVoice, { type OsharaVoiceOptions } from '../lib/index.js'
import { loadTracing } from '../lib/observability/tracing.js'
import { buildApp, postToken, registerPublicError } from './helpers/app.js'
import { API_KEY, ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'

// OpenTelemetry (telemetry: { tracing: true }): an INTERNAL span `oshara.session.create` per
// session request, parent of undici's CLIENT span of each attempt (made by the real undici
// instrumentation, from the diagnostics channels our undici Pool publishes), and child of the
// route's span with @fastify/otel. An in-memory exporter keeps what was recorded.

const exporter = new InMemorySpanExporter()
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
trace.setGlobalTracerProvider(provider)
const contextManager = new AsyncLocalStorageContextManager().enable()
context.setGlobalContextManager(contextManager)
const undici = new UndiciInstrumentation()
undici.setTracerProvider(provider)
undici.enable()
t.teardown(async () => {
  undici.disable()
  await provider.shutdown()
  context.disable()
  trace.disable()
})
t.beforeEach(() => { exporter.reset() })

const EMAIL = 'grace.hopper.51c0@private-mail.example'
const MCP_TOKEN = 'mcp-bearer-77e0c3-do-not-export'
const withSecrets: Partial<OsharaVoiceOptions> = {
  apiKey: API_KEY,
  metadata: () => ({ user_email: EMAIL }),
  session: () => ({ mcp_headers: { authorization: `Bearer ${MCP_TOKEN}` } }),
  telemetry: { tracing: true }
}

function spansNamed (name: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((span) => span.name === name)
}

function childrenOf (parent: ReadableSpan): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((span) => span.parentSpanContext?.spanId === parent.spanContext().spanId)
}

/** Nothing secret in any span: attributes, events, status, names. */
function noSecrets (t: Test, tokens: string[]): void {
  const text = JSON.stringify(exporter.getFinishedSpans().map((span) => ({ name: span.name, attributes: span.attributes, events: span.events, status: span.status, links: span.links })))
  const leaks = [API_KEY, EMAIL, MCP_TOKEN, ...tokens].filter((secret) => text.includes(secret))
  t.same(leaks, [], 'no API key, metadata value, mcp_headers value or token in any span')
}

t.test('one mint with one retry: one oshara.session.create span, parent of the two undici attempt spans', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, withSecrets)
  emulator.fault({ status: 503 }, 1)
  const reply = await postToken(app)
  t.equal(reply.statusCode, 200)

  const [span, ...more] = spansNamed('oshara.session.create')
  t.equal(more.length, 0, 'one span per mint')
  if (span === undefined) throw new Error('no oshara.session.create span')
  t.equal(span.kind, SpanKind.INTERNAL)
  const requestId = sessionRequests(emulator)[0]?.headers['x-request-id']
  t.match(requestId, /^req-\d+$/, 'x-request-id is request.id')
  t.same(span.attributes, { 'oshara.agent': 'support-bot', 'oshara.request_id': requestId, 'oshara.attempts': 2, 'oshara.session_id': reply.json().session_id })
  t.equal(span.status.code, SpanStatusCode.UNSET)
  t.equal(span.parentSpanContext, undefined, 'a root span without a route span')

  const attempts = childrenOf(span)
  t.equal(attempts.length, 2, 'its children are the two attempts')
  t.ok(attempts.every((attempt) => attempt.kind === SpanKind.CLIENT && attempt.instrumentationScope.name === '@opentelemetry/instrumentation-undici'))
  t.same(attempts.map((attempt) => attempt.attributes['http.response.status_code']).sort(), [200, 503])
  t.ok(attempts.every((attempt) => attempt.spanContext().traceId === span.spanContext().traceId), 'one trace')
  noSecrets(t, [reply.json().token])
})

t.test('a failed mint: status ERROR, the error code and the outcome', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, withSecrets)
  emulator.fault({ status: 500, body: { detail: `refused ${EMAIL}` } }, 1)
  t.equal((await postToken(app)).statusCode, 502)
  const [span] = spansNamed('oshara.session.create')
  t.match(span?.attributes, { 'oshara.agent': 'support-bot', 'oshara.attempts': 1, 'oshara.error.code': 'FST_OSHARA_UPSTREAM_ERROR', 'error.type': 'FST_OSHARA_UPSTREAM_ERROR', 'oshara.outcome': 'unknown' })
  t.notOk(Object.hasOwn(span?.attributes ?? {}, 'oshara.session_id'))
  t.same(span?.status, { code: SpanStatusCode.ERROR, message: 'The voice service failed. Try again shortly.' })
  t.equal(childrenOf(span as ReadableSpan).length, 1)
  noSecrets(t, [])
})

t.test('decorator calls are spans too, with the caller\'s request id; without telemetry there is no span', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { route: false, telemetry: { tracing: true } })
  await app.oshara.createSession({}, { requestId: 'job-7' })
  t.match(spansNamed('oshara.session.create')[0]?.attributes, { 'oshara.request_id': 'job-7', 'oshara.attempts': 1 })

  exporter.reset()
  const off = await buildApp(t, emulator, { decorator: 'off', telemetry: { tracing: false } })
  t.equal((await postToken(off)).statusCode, 200)
  t.equal(spansNamed('oshara.session.create').length, 0, 'tracing: false makes no span')
  t.equal(spansNamed('POST').length, 1, 'while undici\'s own span is there')
})

t.test('with @fastify/otel the span nests under the route\'s span', async (t) => {
  const emulator = await startEmulator(t)
  const instrumentation = new FastifyOtelInstrumentation()
  instrumentation.setTracerProvider(provider)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(instrumentation.plugin())
  // No startup check: its GET of the appearance would start a trace of its own.
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', baseUrl: emulator.url, public: true, checkOnReady: false, ...withSecrets })
  const reply = await app.inject({ method: 'POST', url: '/voice-token' })
  t.equal(reply.statusCode, 200)

  const [span] = spansNamed('oshara.session.create')
  const parent = exporter.getFinishedSpans().find((candidate) => candidate.spanContext().spanId === span?.parentSpanContext?.spanId)
  t.equal(parent?.instrumentationScope.name, '@fastify/otel', 'the parent is a span of the route')
  t.match(parent, { name: /^handler/, attributes: { 'http.route': '/voice-token' } }, 'the route handler\'s span')
  const request = exporter.getFinishedSpans().find((candidate) => candidate.spanContext().spanId === parent?.parentSpanContext?.spanId)
  t.match(request, { name: 'request', kind: SpanKind.SERVER }, 'under the request\'s span')
  t.equal(childrenOf(span as ReadableSpan).length, 1, 'and the attempt is its child')
  t.equal(new Set(exporter.getFinishedSpans().map((item) => item.spanContext().traceId)).size, 1, 'one trace from the request to the attempt')
  noSecrets(t, [reply.json().token])
})

t.test('telemetry is checked at register; without @opentelemetry/api, register fails with the fix', async (t) => {
  t.match(await registerPublicError({ telemetry: { tracing: 'yes' as never } }), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /"telemetry\.tracing" must be a boolean/ })
  t.match(await registerPublicError({ telemetry: { metrics: true } as never }), { message: /"telemetry\.metrics" is not a known option/ })
  t.match(await registerPublicError({ telemetry: true as never }), { message: /"telemetry" must be an object/ })

  // A real dynamic import of a package that is not installed, as @opentelemetry/api would be.
  const notInstalled = '@opentelemetry/not-installed-here'
  const error = await loadTracing(() => import(notInstalled)).then(() => undefined, (cause: unknown) => cause)
  t.match(error, {
    code: 'FST_OSHARA_INVALID_OPTIONS',
    message: 'fastify-oshara-voice: option "telemetry.tracing" needs @opentelemetry/api, which is not installed. Fix: npm install @opentelemetry/api (or remove telemetry.tracing)'
  })
})
