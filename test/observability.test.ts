import t, { type Test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import { inspect } from 'node:util'
import type { FastifyInstance } from 'fastify'
import { createOsharaClient, MemoryQuotaStore, MemorySessionStore, type OsharaDecorator, type OsharaError } from '../lib/index.js'
import type { SessionStore } from '../lib/stores.js'
import { buildApp, postToken } from './helpers/app.js'
import { API_KEY, failure, ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'
import { waitUntil } from './helpers/wait.js'

// The diagnostics channels of README "Observability": each event with its documented fields, no
// secret in any message, nothing published (or built) when nothing is subscribed; and stats().

const CHANNELS = ['oshara:retry', 'oshara:breaker', 'oshara:limit', 'oshara:store:error', 'oshara:session:end', 'oshara:quota']
const TRACING_CHANNELS = ['oshara:session:create', 'oshara:session:lookup']

// Distinctive values that must never appear in a message: the API key, metadata values, an
// mcp_headers value, the limiter key (a user's id), and every token minted.
const EMAIL = 'ada.lovelace.7f3b@private-mail.example'
const USER_ID = 'uid-4c81e2-do-not-publish'
const MCP_TOKEN = 'mcp-bearer-9d2a51-do-not-publish'
const USER_KEY = 'limit-key-user-88a1'
const SECRETS = [API_KEY, EMAIL, USER_ID, MCP_TOKEN, USER_KEY]

const withSecrets = {
  apiKey: API_KEY,
  metadata: () => ({ user_email: EMAIL, user_id: USER_ID }),
  session: () => ({ mcp_headers: { authorization: `Bearer ${MCP_TOKEN}` } })
}

interface Received {
  channel: string
  event: string | undefined
  /** The message object (a tracing context keeps changing until its call ends). */
  message: Record<string, unknown>
  /** The message as it was when published. */
  snapshot: Record<string, unknown>
  /** Everything serialized: JSON, and `inspect` with hidden fields, errors' detail and cause. */
  text: string
}

/** Subscribes to every channel of the plugin until `t` ends. */
function listen (t: Test) {
  const received: Received[] = []
  const record = (channel: string, event?: string) => (message: unknown) => {
    const json = JSON.stringify(message)
    received.push({ channel, event, message: message as Record<string, unknown>, snapshot: JSON.parse(json), text: json + inspect(message, { depth: 10, showHidden: true }) })
  }
  for (const name of CHANNELS) {
    const onMessage = record(name)
    diagnostics.subscribe(name, onMessage)
    t.teardown(() => { diagnostics.unsubscribe(name, onMessage) })
  }
  for (const name of TRACING_CHANNELS) {
    const handlers = { start: record(name, 'start'), end: record(name, 'end'), asyncStart: record(name, 'asyncStart'), asyncEnd: record(name, 'asyncEnd'), error: record(name, 'error') }
    const channel = diagnostics.tracingChannel(name)
    channel.subscribe(handlers)
    t.teardown(() => { channel.unsubscribe(handlers) })
  }
  return {
    received,
    of: (channel: string, event?: string): Received[] => received.filter((item) => item.channel === channel && (event === undefined || item.event === event)),
    /** No secret and no token of `tokens` in any message received. */
    noSecrets: (t: Test, tokens: string[]): void => {
      t.ok(received.length > 0, 'messages were received')
      const leaks = [...SECRETS, ...tokens].filter((secret) => received.some((item) => item.text.includes(secret)))
      t.same(leaks, [], 'no secret, metadata value, mcp_headers value, limiter key or token in any message')
    }
  }
}

function decoratorOf (app: FastifyInstance, name: string): OsharaDecorator {
  return (app as unknown as Record<string, OsharaDecorator>)[name] as OsharaDecorator
}

let requestIds = 0
const fastifyOptions = { genReqId: () => `req-obs-${++requestIds}` }

t.test('oshara:session:create and oshara:retry: a success, a retried 503 and an unknown-outcome 500', async (t) => {
  const events = listen(t)
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, withSecrets, fastifyOptions)

  const ok = await postToken(app)
  t.equal(ok.statusCode, 200)
  const id = sessionRequests(emulator)[0]?.headers['x-request-id'] as string
  t.match(id, /^req-obs-\d+$/, 'x-request-id upstream is request.id')
  t.same(events.of('oshara:session:create').map((item) => item.event), ['start', 'end', 'asyncStart', 'asyncEnd'])
  t.same(events.of('oshara:session:create', 'start')[0]?.snapshot, { agent: 'support-bot', requestId: id }, 'at the start: agent and request id')
  t.same(events.of('oshara:session:create', 'asyncEnd')[0]?.snapshot, { agent: 'support-bot', requestId: id, attempts: 1, sessionId: ok.json().session_id },
    'at the end: attempts and session id, and no result (the session holds the token)')

  emulator.fault({ status: 503 }, 1)
  const retried = await postToken(app)
  t.equal(retried.statusCode, 200)
  const retriedId = sessionRequests(emulator)[1]?.headers['x-request-id']
  const [retry] = events.of('oshara:retry')
  t.match(retry?.snapshot, { requestId: retriedId, attempt: 1, code: 'FST_OSHARA_UPSTREAM_ERROR', upstreamStatus: 503, delayMs: Number })
  t.same(Object.keys(retry?.snapshot ?? {}).sort(), ['attempt', 'code', 'delayMs', 'requestId', 'upstreamStatus'])
  t.match(events.of('oshara:session:create', 'asyncEnd')[1]?.snapshot, { requestId: retriedId, attempts: 2, sessionId: retried.json().session_id })

  emulator.fault({ status: 500 }, 1)
  t.equal((await postToken(app)).statusCode, 502)
  const [failed] = events.of('oshara:session:create', 'error')
  t.match(failed?.message, { agent: 'support-bot', requestId: /^req-obs-/, attempts: 1 })
  t.match(failed?.message.error, { code: 'FST_OSHARA_UPSTREAM_ERROR', outcome: 'unknown', upstreamStatus: 500 }, 'the error, with its code and outcome')
  t.equal(events.of('oshara:retry').length, 1, 'a 500 is not retried: its outcome is unknown')
  t.equal(events.of('oshara:session:create', 'asyncEnd').length, 3)

  events.noSecrets(t, [ok.json().token, retried.json().token])
})

t.test('oshara:session:create from the decorator: the caller\'s request id, else a UUID; an invalid body is traced too', async (t) => {
  const events = listen(t)
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { route: false })
  await app.oshara.createSession({ metadata: { user_email: EMAIL } }, { requestId: 'job-42' })
  await app.oshara.createSession({})
  const [first, second] = sessionRequests(emulator).map((request) => request.headers['x-request-id'])
  t.equal(first, 'job-42')
  t.match(second, /^[0-9a-f-]{36}$/)
  t.same(events.of('oshara:session:create', 'asyncEnd').map((item) => item.snapshot.requestId), [first, second])

  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url })
  t.teardown(() => client.close())
  t.match(await failure(client.createSession(null as never)), { code: 'FST_OSHARA_INVALID_SESSION' })
  t.match(events.of('oshara:session:create', 'error')[0]?.message, { agent: undefined, attempts: 0, error: { code: 'FST_OSHARA_INVALID_SESSION' } })
  events.noSecrets(t, [])
})

t.test('oshara:breaker: opens once at the threshold (not again for calls already in flight), again when a probe fails, closes after a good probe', async (t) => {
  const events = listen(t)
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: false, breaker: { failureThreshold: 2, cooldownMs: 30 } })
  t.teardown(() => client.close())
  const body = { agent: 'support-bot' }
  t.equal(client.breakerState, 'closed')

  emulator.fault({ status: 500 }, 3)
  await Promise.all([1, 2, 3].map(() => failure(client.createSession(body))))
  t.equal(client.breakerState, 'open')
  t.same(events.of('oshara:breaker').map((item) => item.snapshot), [{ state: 'open', failures: 2, cooldownMs: 30 }], 'one message: the third failure was in flight when it opened')

  await waitUntil(() => client.breakerState === 'half-open', 'the cooldown ends')
  emulator.fault({ status: 500 }, 1)
  await failure(client.createSession(body))
  await waitUntil(() => client.breakerState === 'half-open', 'the second cooldown ends')
  await client.createSession(body)
  t.equal(client.breakerState, 'closed')
  t.same(events.of('oshara:breaker').map((item) => item.snapshot), [
    { state: 'open', failures: 2, cooldownMs: 30 },
    { state: 'open', failures: 4, cooldownMs: 30 },
    { state: 'closed' }
  ])
  const noBreaker = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, breaker: false })
  t.teardown(() => noBreaker.close())
  t.equal(noBreaker.breakerState, 'closed', 'without a breaker: always closed')
  events.noSecrets(t, [])
})

t.test('oshara:limit and oshara:quota: the scope, the budget and the window; never the key', async (t) => {
  const events = listen(t)
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    ...withSecrets,
    limits: { concurrency: 1, key: () => USER_KEY },
    quota: { window: 'day', sessions: 2 },
    tracking: false
  }, fastifyOptions)

  const first = await postToken(app)
  t.equal(first.statusCode, 200)
  const limited = await postToken(app)
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().code, 'FST_OSHARA_SESSION_LIMIT')
  const [limit] = events.of('oshara:limit')
  t.match(limit?.snapshot, { scope: 'key', retryAfterMs: Number, requestId: /^req-obs-/ })
  t.same(Object.keys(limit?.snapshot ?? {}).sort(), ['requestId', 'retryAfterMs', 'scope'])

  t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${first.json().session_id as string}` })).statusCode, 204)
  const second = await postToken(app)
  t.equal(second.statusCode, 200, 'the refused request gave its session back to the quota')
  const refused = await postToken(app)
  t.equal(refused.statusCode, 429)
  t.equal(refused.json().code, 'FST_OSHARA_QUOTA_EXCEEDED')
  const [quota] = events.of('oshara:quota')
  t.match(quota?.snapshot, { budget: 'sessions', windowId: /^d\d{4}-\d\d-\d\d$/, retryAfterMs: Number, requestId: /^req-obs-/ })
  t.ok((quota?.snapshot.retryAfterMs as number) >= 1000)
  t.same(Object.keys(quota?.snapshot ?? {}).sort(), ['budget', 'requestId', 'retryAfterMs', 'windowId'])

  t.same(app.oshara.stats(), {
    minted: 2,
    failed: { FST_OSHARA_SESSION_LIMIT: 1, FST_OSHARA_QUOTA_EXCEEDED: 1 },
    retries: 0,
    breakerState: 'closed',
    activeSlots: 1,
    ended: 0,
    quotaRefusals: 1,
    tools: {}
  })
  events.noSecrets(t, [first.json().token, second.json().token])
})

/** A session store whose every call fails (`throw`) or never answers (`hang`). */
function brokenStore (mode: 'throw' | 'hang'): SessionStore {
  const fail = (): Promise<never> => mode === 'throw' ? Promise.reject(new Error('store down: connect ECONNREFUSED 127.0.0.1:6379')) : new Promise(() => {})
  return { acquire: fail, bind: fail, release: fail, releaseSession: fail }
}

t.test('oshara:store:error: which store, the operation and the error\'s message (or timeout)', async (t) => {
  const events = listen(t)
  const emulator = await startEmulator(t)
  const down = await buildApp(t, emulator, { decorator: false, limits: { concurrency: 1, key: () => USER_KEY, store: brokenStore('throw'), onStoreError: 'allow' } })
  t.equal((await postToken(down)).statusCode, 200, 'served without a limit (onStoreError: allow)')
  const slow = await buildApp(t, emulator, { decorator: false, limits: { concurrency: 1, store: brokenStore('hang'), storeTimeoutMs: 20 } })
  t.equal((await postToken(slow)).statusCode, 503)
  const failingQuota = new MemoryQuotaStore()
  // A store may reject with something else than an Error: its message is then the value as text.
  failingQuota.consume = () => Promise.reject('LOADING the dataset in memory') // eslint-disable-line prefer-promise-reject-errors
  const quota = await buildApp(t, emulator, { decorator: false, quota: { window: 'day', sessions: 5, store: failingQuota } })
  t.equal((await postToken(quota)).statusCode, 503)
  t.same(events.of('oshara:store:error').map((item) => item.snapshot), [
    { store: 'limiter', operation: 'acquire', message: 'store down: connect ECONNREFUSED 127.0.0.1:6379' },
    { store: 'limiter', operation: 'acquire', message: 'timeout' },
    { store: 'quota', operation: 'consume', message: 'LOADING the dataset in memory' }
  ])
  events.noSecrets(t, [])
})

t.test('oshara:session:end and oshara:session:lookup: tracking follows a call until it ends', async (t) => {
  const events = listen(t)
  const emulator = await startEmulator(t)
  const ended: string[] = []
  const app = await buildApp(t, emulator, {
    ...withSecrets,
    limits: { concurrency: 2, key: () => USER_KEY },
    tracking: { firstCheckMs: 5, maxCheckIntervalMs: 10 },
    onSessionEnd: (_summary, { sessionId }) => { ended.push(sessionId) }
  })
  const session = (await postToken(app)).json()
  emulator.endSession(session.session_id, { durationSeconds: 70, costUsd: '0.0583' })
  await waitUntil(() => ended.length === 1, 'onSessionEnd is called')
  t.same(events.of('oshara:session:end').map((item) => item.snapshot), [{ sessionId: session.session_id, durationSeconds: 70, costUsd: 0.0583 }])
  const lookups = events.of('oshara:session:lookup', 'asyncEnd')
  t.ok(lookups.length >= 1)
  t.match(lookups.at(-1)?.snapshot, { sessionId: session.session_id, requestId: /^[0-9a-f-]{36}$/, attempts: 1, finalized: true })
  t.ok(lookups.slice(0, -1).every((item) => item.snapshot.finalized === false), 'earlier lookups found the call still running')
  t.same(Object.keys(events.of('oshara:session:lookup', 'start')[0]?.snapshot ?? {}).sort(), ['requestId', 'sessionId'])

  // A summary without duration and cost (Oshara has not computed them): the message leaves them out.
  const other = (await postToken(app)).json()
  emulator.fault({
    target: 'billing',
    status: 200,
    body: { success: true, message: 'ok', data: { session_id: other.session_id, finalized_at: new Date().toISOString(), session_duration_seconds: null, estimated_cost_usd: null }, errors: null }
  })
  await waitUntil(() => ended.length === 2, 'the second session ends')
  t.same(events.of('oshara:session:end')[1]?.snapshot, { sessionId: other.session_id })
  t.match(app.oshara.stats(), { minted: 2, ended: 2, activeSlots: 0 })
  events.noSecrets(t, [session.token, other.token])
})

t.test('stats(): minted and failed by code for the route and the decorator, retries, breaker, slots', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    agent: (request) => String(request.headers['x-agent'] ?? 'support-bot'),
    beforeSession: (request) => {
      if (request.headers['x-deny'] !== undefined) throw Object.assign(new Error('Not on your plan.'), { statusCode: 403 })
    }
  })
  t.same(app.oshara.stats(), { minted: 0, failed: {}, retries: 0, breakerState: 'closed', activeSlots: undefined, ended: 0, quotaRefusals: 0, tools: {} })
  emulator.fault({ status: 503 }, 1)
  t.equal((await postToken(app)).statusCode, 200)
  t.equal((await postToken(app, undefined, { 'x-deny': '1' })).statusCode, 403)
  t.equal((await postToken(app, undefined, { 'x-agent': 'no-such-bot' })).statusCode, 502)
  await app.oshara.createSession({ agent: 'sales-bot' })
  await failure(app.oshara.createSession({}))
  t.same(app.oshara.stats(), {
    minted: 2,
    failed: { UNKNOWN: 1, FST_OSHARA_AGENT_NOT_FOUND: 1, FST_OSHARA_INVALID_SESSION: 1 },
    retries: 1,
    breakerState: 'closed',
    activeSlots: undefined,
    ended: 0,
    quotaRefusals: 0,
    tools: {}
  })

  const custom = await buildApp(t, emulator, { decorator: 'custom', path: '/custom', limits: { concurrency: 1, store: new MemorySessionStore() } })
  t.equal(decoratorOf(custom, 'custom').stats().activeSlots, 0, 'a MemorySessionStore counts its live slots')
  const store = new MemorySessionStore()
  const wrapped: SessionStore = {
    acquire: (request) => store.acquire(request),
    bind: (...args) => store.bind(...args),
    release: (slotId) => store.release(slotId),
    releaseSession: (...args) => store.releaseSession(...args)
  }
  const other = await buildApp(t, emulator, { decorator: 'other', path: '/other', limits: { concurrency: 1, store: wrapped } })
  t.equal(decoratorOf(other, 'other').stats().activeSlots, undefined, 'another store is not asked (stats() makes no store call)')
})

t.test('with nothing subscribed, nothing is published or traced, and everything still works', async (t) => {
  // Inactive channels are instances of Channel and TracingChannel: a publish or trace on one of
  // ours would land in these spies. (A message built but never handed to a channel cannot be
  // seen; every publisher checks hasSubscribers before building it.)
  const channelPrototype = diagnostics.Channel.prototype as unknown as Record<'publish' | 'runStores', (...args: unknown[]) => unknown>
  const tracingPrototype = Object.getPrototypeOf(diagnostics.tracingChannel('oshara:probe')) as Record<'tracePromise' | 'traceSync', (...args: unknown[]) => unknown>
  const calls: string[] = []
  const spy = <K extends string>(target: Record<K, (...args: unknown[]) => unknown>, method: K, nameOf: (self: unknown) => string): void => {
    const original = target[method]
    target[method] = function (this: unknown, ...args: unknown[]) {
      const name = nameOf(this)
      if (name.includes('oshara:')) calls.push(`${name} ${method}`)
      return original.apply(this, args)
    }
    t.teardown(() => { target[method] = original })
  }
  const channelName = (self: unknown): string => String((self as { name: string }).name)
  spy(channelPrototype, 'publish', channelName)
  spy(channelPrototype, 'runStores', channelName)
  spy(tracingPrototype, 'tracePromise', (self) => channelName((self as { start: unknown }).start))
  spy(tracingPrototype, 'traceSync', (self) => channelName((self as { start: unknown }).start))

  diagnostics.channel('oshara:retry').publish({ control: true })
  t.same(calls, ['oshara:retry publish'], 'control: the spies see a publish on an inactive channel')
  calls.length = 0

  const channels = [...CHANNELS.map((name) => diagnostics.channel(name)), ...TRACING_CHANNELS.map((name) => diagnostics.tracingChannel(name))]
  t.ok(channels.every((channel) => !(channel as { hasSubscribers: boolean }).hasSubscribers), 'no channel has subscribers')

  const emulator = await startEmulator(t)
  const ended: string[] = []
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    breaker: { failureThreshold: 1, cooldownMs: 60_000 },
    limits: { concurrency: 1, key: (request) => String(request.headers['x-user']) },
    quota: { window: 'day', sessions: 2, key: (request) => String(request.headers['x-user']) },
    tracking: { firstCheckMs: 5, maxCheckIntervalMs: 10 },
    onSessionEnd: (_summary, { sessionId }) => { ended.push(sessionId) }
  })
  emulator.fault({ status: 503 }, 1)
  const session = await postToken(app, undefined, { 'x-user': 'a' })
  t.equal(session.statusCode, 200, 'a success after a retry')
  t.equal((await postToken(app, undefined, { 'x-user': 'a' })).statusCode, 429, 'a limiter refusal')
  emulator.endSession(session.json().session_id)
  await waitUntil(() => ended.length === 1, 'tracking looked the session up until it ended')
  t.equal((await postToken(app, undefined, { 'x-user': 'a' })).statusCode, 200)
  t.equal((await postToken(app, undefined, { 'x-user': 'a' })).statusCode, 429, 'a quota refusal')
  emulator.fault({ status: 500 }, 1)
  t.equal((await postToken(app, undefined, { 'x-user': 'b' })).statusCode, 502, 'an unknown outcome')
  t.equal(app.oshara.client.breakerState, 'open', 'the breaker opened')
  const down = await buildApp(t, emulator, { decorator: false, path: '/down', limits: { concurrency: 1, store: brokenStore('throw'), onStoreError: 'allow' } })
  t.equal((await down.inject({ method: 'POST', url: '/down' })).statusCode, 200, 'a store error')

  t.same(calls, [], 'no oshara channel was published to or traced')
  t.match(app.oshara.stats(), { minted: 2, retries: 1, ended: 1, quotaRefusals: 1, breakerState: 'open' })
})

// The errors on a tracing context are OsharaErrors: their own JSON leaves the upstream detail out.
t.test('an error in a message serializes without its detail', async (t) => {
  const events = listen(t)
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, apiKey: API_KEY, retry: false })
  t.teardown(() => client.close())
  emulator.fault({ status: 400, body: { detail: `bad metadata ${EMAIL}` } })
  const error = await failure(client.createSession({ agent: 'support-bot', metadata: { user_email: EMAIL } }))
  t.match(error, { code: 'FST_OSHARA_REQUEST_REJECTED', detail: /\[redacted\]/ })
  const message = events.of('oshara:session:create', 'error')[0]?.message as { error: OsharaError }
  t.equal(message.error, error)
  events.noSecrets(t, [])
})
