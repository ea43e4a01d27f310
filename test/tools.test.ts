import t, { type Test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import { inspect } from 'node:util'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { request } from 'undici'
import osharaVoice, {
  MemorySessionStore,
  OsharaToolRefusedError,
  type OsharaToolContext,
  type OsharaToolDefinition,
  type OsharaVoiceOptions
} from '../lib/index.js'
import type { SessionStore } from '../lib/stores.js'
import type { OsharaEmulator } from '../lib/emulator.js'
import { logCapture } from './helpers/app.js'
import { API_KEY, ORIGIN, startEmulator } from './helpers/emulator.js'
import { waitUntil } from './helpers/wait.js'

// Agent tools end to end: sessions minted by the app (route and decorator) carry a signature; the
// emulator calls the app's tool as Oshara's worker does, over real HTTP on 127.0.0.1.

const SECRET = 'tool-secret-9f1c2b7e-do-not-log'
const SIGNING_KEY = 'signing-key-4e1d0c9b8a7f6e5d4c3b2a19-do-not-log'
const OLD_SIGNING_KEY = 'old-signing-key-0a1b2c3d4e5f60718293a4b5c6d7'
const EMAIL = 'ada.lovelace.7f3b@private-mail.example'
const USER_ID = 'uid-4c81e2-do-not-publish'
const USER_KEY = 'limit-key-user-88a1'
const ORDER_ID = 'order-31337-do-not-publish'
const SIGNATURE = /^v1\.\d+\.[01]\.[A-Za-z0-9_-]{43}$/

/** Insertion order differs from the order a JSONB store keeps (by length, then bytes), at both levels. */
const METADATA = { user_id: USER_ID, user_email: EMAIL, org: { plan: 'pro', id: 'org-1' }, tags: ['a', 'b'] }
const HEADERS = { 'x-oshara-secret': SECRET }
const OrderArgs = Type.Object({ order_id: Type.String(), quantity: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false })

interface Seen { args: unknown, context: Omit<OsharaToolContext, 'request' | 'signal'>, metadataKeys: string[] }

interface ToolApp {
  app: FastifyInstance
  /** The tool's URL, e.g. http://127.0.0.1:1234/oshara/tools/lookup_order */
  url: string
  seen: Seen[]
  log: ReturnType<typeof logCapture>
}

type Handler = OsharaToolDefinition<typeof OrderArgs>['handler']

const lookupOrder: Handler = async (args, context) => ({ order: args.order_id, status: 'shipped', for: context.metadata.user_id })

/** An app with `tools` and the tool `lookup_order`, listening on 127.0.0.1; closed at the end of `t`. */
async function toolApp (t: Test, emulator: OsharaEmulator, options: Partial<OsharaVoiceOptions> = {}, handler: Handler = lookupOrder, tool: Partial<OsharaToolDefinition<typeof OrderArgs>> = {}): Promise<ToolApp> {
  const log = logCapture()
  const app = Fastify({ logger: { level: 'debug', stream: log.stream } })
  t.teardown(() => app.close())
  await app.register(osharaVoice, {
    origin: ORIGIN,
    agent: 'support-bot',
    baseUrl: emulator.url,
    public: true,
    metadata: () => METADATA,
    tools: { secret: SECRET, signingKey: SIGNING_KEY },
    ...options
  } as OsharaVoiceOptions)
  const seen: Seen[] = []
  app.oshara.tool('lookup_order', {
    args: OrderArgs,
    handler: async (args, context) => {
      const { request: _request, signal: _signal, ...rest } = context
      seen.push({ args, context: rest, metadataKeys: Object.keys(context.metadata) })
      return await handler(args, context)
    },
    ...tool
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, url: `http://127.0.0.1:${port}/oshara/tools/lookup_order`, seen, log }
}

async function mintByRoute (app: FastifyInstance, path = '/voice-token'): Promise<string> {
  const reply = await app.inject({ method: 'POST', url: path })
  if (reply.statusCode !== 200) throw new Error(`mint failed: ${reply.statusCode} ${reply.body}`)
  return reply.json().session_id
}

/** A session minted straight at Oshara (the emulator), around the app: `Origin` is just a header. */
async function mintAroundTheApp (emulator: OsharaEmulator, metadata: Record<string, unknown>): Promise<string> {
  const response = await request(`${emulator.url}/api/agents/agent-session/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: ORIGIN },
    body: JSON.stringify({ agent: 'support-bot', metadata })
  })
  return ((await response.body.json()) as { session_id: string }).session_id
}

function storedMetadata (emulator: OsharaEmulator, sessionId: string): Record<string, unknown> {
  return emulator.sessions.get(sessionId)?.metadata as Record<string, unknown>
}

t.test('a session minted by the route: the tool answers with the signed metadata, without its signature', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, seen } = await toolApp(t, emulator)
  const sessionId = await mintByRoute(app)
  const { _oshara_sig: signature, ...rest } = storedMetadata(emulator, sessionId)
  t.match(signature, SIGNATURE, 'Oshara got the metadata with its signature under _oshara_sig')
  t.same(rest, METADATA, 'and nothing else changed')
  const reply = await emulator.callTool(sessionId, { url, args: { order_id: ORDER_ID }, headers: HEADERS })
  t.same(reply, { status: 200, body: { order: ORDER_ID, status: 'shipped', for: USER_ID } })
  t.equal(seen.length, 1)
  t.same(seen[0]?.args, { order_id: ORDER_ID }, 'the arguments without _session')
  t.same(seen[0]?.context, { sessionId, metadata: METADATA, key: undefined }, 'no limits: no key')
  t.notOk('_oshara_sig' in (seen[0]?.context.metadata ?? {}), 'the handler never sees the signature')
})

t.test('a session minted by the decorator (with and without metadata) is served too', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, seen } = await toolApp(t, emulator, { route: false })
  const withMetadata = await app.oshara.createSession({ metadata: { user_id: 'native-1' } })
  const without = await app.oshara.createSession({})
  t.same(await emulator.callTool(withMetadata.session_id, { url, args: { order_id: '1' }, headers: HEADERS }), { status: 200, body: { order: '1', status: 'shipped', for: 'native-1' } })
  t.equal((await emulator.callTool(without.session_id, { url, args: { order_id: '2' }, headers: HEADERS })).status, 200)
  t.same(seen.map(({ context }) => context.metadata), [{ user_id: 'native-1' }, {}], 'a session without metadata is signed too')
})

t.test('metadata whose keys Oshara reordered (at every level) is still accepted', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, seen } = await toolApp(t, emulator)
  const sessionId = await mintByRoute(app)
  t.equal((await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: HEADERS })).status, 200)
  const keys = seen[0]?.metadataKeys
  t.notSame(keys, Object.keys(METADATA), 'the keys came back in another order')
  t.same(keys, ['org', 'tags', 'user_id', 'user_email'], 'as a JSONB column keeps them: by length, then bytes')
  t.same(Object.keys(seen[0]?.context.metadata.org as object), ['id', 'plan'], 'nested keys too')
})

t.test('a session minted straight at Oshara (no signature, or a made-up one) is refused 403, the handler not run', async (t) => {
  const emulator = await startEmulator(t)
  const { url, seen } = await toolApp(t, emulator)
  const forbidden = { status: 403, body: { error: 'This call was not started by this app.', code: 'FST_OSHARA_TOOL_FORBIDDEN' } }
  const unsigned = await mintAroundTheApp(emulator, { user_id: 'victim' })
  t.same(await emulator.callTool(unsigned, { url, args: { order_id: '1' }, headers: HEADERS }), forbidden, 'no signature')
  const madeUp = await mintAroundTheApp(emulator, { user_id: 'victim', _oshara_sig: `v1.9999999999.0.${'A'.repeat(43)}` })
  t.same(await emulator.callTool(madeUp, { url, args: { order_id: '1' }, headers: HEADERS }), forbidden, 'a signature of the right shape, made up')
  const malformed = await mintAroundTheApp(emulator, { user_id: 'victim', _oshara_sig: 12 })
  t.same(await emulator.callTool(malformed, { url, args: { order_id: '1' }, headers: HEADERS }), forbidden, 'a signature that is not one')
  t.equal(seen.length, 0)
})

t.test('metadata edited after minting (another user_id, or an added key) is refused 403', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, seen } = await toolApp(t, emulator)
  const edited = await mintByRoute(app)
  storedMetadata(emulator, edited).user_id = 'victim'
  t.equal((await emulator.callTool(edited, { url, args: { order_id: '1' }, headers: HEADERS })).status, 403, 'another user_id')
  const added = await mintByRoute(app)
  storedMetadata(emulator, added).role = 'admin'
  t.equal((await emulator.callTool(added, { url, args: { order_id: '1' }, headers: HEADERS })).status, 403, 'an added key')
  // The signature of one session pasted onto another's metadata.
  const victim = await mintAroundTheApp(emulator, { ...METADATA, user_id: 'victim', _oshara_sig: storedMetadata(emulator, await mintByRoute(app))._oshara_sig })
  t.equal((await emulator.callTool(victim, { url, args: { order_id: '1' }, headers: HEADERS })).status, 403, 'a signature moved to other metadata')
  t.equal(seen.length, 0)
})

t.test('a wrong or missing secret is refused 401 before anything else, the handler not run', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, seen } = await toolApp(t, emulator)
  const sessionId = await mintByRoute(app)
  const unauthorized = { status: 401, body: { error: 'Unauthorized.', code: 'FST_OSHARA_TOOL_UNAUTHORIZED' } }
  t.same(await emulator.callTool(sessionId, { url, args: { order_id: '1' } }), unauthorized, 'missing')
  t.same(await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: { 'x-oshara-secret': `${SECRET}x` } }), unauthorized, 'longer')
  t.same(await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: { 'x-oshara-secret': SECRET.slice(0, -1) + 'X' } }), unauthorized, 'one character off')
  const unsigned = await mintAroundTheApp(emulator, {})
  t.same(await emulator.callTool(unsigned, { url, args: { order_id: '1' } }), unauthorized, 'the secret is checked before the signature')
  t.equal(seen.length, 0)
})

t.test('secretHeader and prefix are configurable', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url } = await toolApp(t, emulator, { tools: { secret: SECRET, secretHeader: 'X-Tool-Key', prefix: '/api/agent-tools' } })
  const sessionId = await mintByRoute(app)
  t.match(url, /\/oshara\/tools\//)
  const custom = url.replace('/oshara/tools/', '/api/agent-tools/')
  t.equal((await emulator.callTool(sessionId, { url: custom, args: { order_id: '1' }, headers: { 'x-tool-key': SECRET } })).status, 200)
  t.equal((await emulator.callTool(sessionId, { url: custom, args: { order_id: '1' }, headers: HEADERS })).status, 401)
  t.equal((await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: { 'x-tool-key': SECRET } })).status, 404)
})

t.test('limits: ctx.key is the limiter key; a session whose slot was freed (DELETE) gets 410', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, seen } = await toolApp(t, emulator, { limits: { concurrency: 2, key: () => USER_KEY } })
  const sessionId = await mintByRoute(app)
  t.equal((await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: HEADERS })).status, 200)
  t.equal(seen[0]?.context.key, USER_KEY, 'the key the session was minted under')
  t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId}` })).statusCode, 204)
  t.same(await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: HEADERS }),
    { status: 410, body: { error: 'This call has ended.', code: 'FST_OSHARA_SESSION_ENDED' } })
  // A session minted without a slot (decorator, no key) is not followed: the store's silence means nothing.
  const unlimited = await app.oshara.createSession({ metadata: { user_id: 'u' } })
  t.equal((await emulator.callTool(unlimited.session_id, { url, args: { order_id: '1' }, headers: HEADERS })).status, 200)
  t.equal(seen[1]?.context.key, undefined)
  // A signed session the store never saw (its signature replayed onto a session minted around the app) is refused too.
  const copied = await mintAroundTheApp(emulator, storedMetadata(emulator, await mintByRoute(app)))
  t.equal((await emulator.callTool(copied, { url, args: { order_id: '1' }, headers: HEADERS })).status, 410, 'a replayed signature on an unknown session')
  t.equal(seen.length, 2)
})

t.test('tracking: a session Oshara reported finalized gets 410; a released but running one is still served', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, seen } = await toolApp(t, emulator, {
    apiKey: API_KEY, limits: { concurrency: 2, key: () => USER_KEY }, tracking: { firstCheckMs: 10, maxCheckIntervalMs: 20 }
  })
  const released = await mintByRoute(app)
  t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${released}` })).statusCode, 204)
  t.equal((await emulator.callTool(released, { url, args: { order_id: '1' }, headers: HEADERS })).status, 200, 'tracked: running until Oshara says it ended')
  t.equal(seen[0]?.context.key, USER_KEY, 'the key is kept once the slot is freed')
  emulator.endSession(released)
  await waitUntil(() => app.oshara.stats().ended === 1, 'the plugin found the call over')
  t.equal((await emulator.callTool(released, { url, args: { order_id: '1' }, headers: HEADERS })).status, 410)
  const decorator = await app.oshara.createSession({})
  t.equal((await emulator.callTool(decorator.session_id, { url, args: { order_id: '1' }, headers: HEADERS })).status, 200, 'tracked without a slot')
  t.equal(seen[1]?.context.key, undefined)
  emulator.endSession(decorator.session_id)
  await waitUntil(() => app.oshara.stats().ended === 2, 'the plugin found the second call over')
  t.equal((await emulator.callTool(decorator.session_id, { url, args: { order_id: '1' }, headers: HEADERS })).status, 410, 'untracked after onSessionEnd: ended')
})

t.test('tracking without limits: ctx.key stays undefined (it is the limiter key)', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, seen } = await toolApp(t, emulator, { apiKey: API_KEY, onSessionEnd: () => {}, tracking: { firstCheckMs: 60_000 } })
  const session = await app.oshara.createSession({}, { key: 'quota-key' })
  t.equal((await emulator.callTool(session.session_id, { url, args: { order_id: '1' }, headers: HEADERS })).status, 200)
  t.equal(seen[0]?.context.key, undefined)
})

t.test('arguments are checked without coercion: 400 naming the argument and what was expected', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, seen } = await toolApp(t, emulator)
  const sessionId = await mintByRoute(app)
  const call = (args: Record<string, unknown>) => emulator.callTool(sessionId, { url, args, headers: HEADERS })
  const invalid = (error: string) => ({ status: 400, body: { error, code: 'FST_OSHARA_TOOL_INVALID_ARGUMENTS' } })
  t.same(await call({}), invalid('Argument "order_id" is required.'))
  t.same(await call({ order_id: 42 }), invalid('Argument "order_id": expected string.'), 'a number is not turned into a string')
  t.same(await call({ order_id: '1', quantity: '2' }), invalid('Argument "quantity": expected integer.'), 'a string is not turned into a number')
  t.same(await call({ order_id: '1', quantity: 0 }), invalid('Argument "quantity": expected integer to be greater or equal to 1.'))
  t.same(await call({ order_id: '1', gift: true }), invalid('Argument "gift" is not accepted.'))
  t.equal(seen.length, 0)
  const nested = await toolApp(t, emulator, {}, lookupOrder, { args: Type.Object({ items: Type.Array(Type.Object({ sku: Type.String() })) }) as unknown as typeof OrderArgs })
  const reply = await emulator.callTool(await mintByRoute(nested.app), { url: nested.url, args: { items: [{ sku: 7 }] }, headers: HEADERS })
  t.same(reply, invalid('Argument "items.0.sku": expected string.'))
  const root = await toolApp(t, emulator, {}, lookupOrder, { args: Type.Array(Type.String()) as unknown as typeof OrderArgs })
  t.same(await emulator.callTool(await mintByRoute(root.app), { url: root.url, args: {}, headers: HEADERS }), invalid('The arguments: expected array.'))
})

t.test('a slow handler: 504 within timeoutMs + 100 ms, its signal aborted', async (t) => {
  const emulator = await startEmulator(t)
  const timeoutMs = 300
  let signal: AbortSignal | undefined
  let abortedAfterMs: number | undefined
  const started = { at: 0 }
  const { app, url } = await toolApp(t, emulator, { tools: { secret: SECRET, timeoutMs } }, async (_args, context) => {
    signal = context.signal
    // Waits until aborted, as a database call given the signal would.
    await new Promise((resolve) => context.signal.addEventListener('abort', resolve))
    abortedAfterMs = performance.now() - started.at
    throw context.signal.reason
  })
  const sessionId = await mintByRoute(app)
  started.at = performance.now()
  const reply = await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: HEADERS })
  const elapsed = performance.now() - started.at
  t.same(reply, { status: 504, body: { error: 'That took too long. Please try again in a moment.', code: 'FST_OSHARA_TOOL_TIMEOUT' } })
  t.ok(elapsed >= timeoutMs, `not before the deadline (${elapsed.toFixed(0)} ms)`)
  t.ok(elapsed < timeoutMs + 100, `within timeoutMs + 100 ms (${elapsed.toFixed(0)} ms)`)
  t.equal(signal?.aborted, true, 'the handler\'s signal aborted')
  t.equal((signal?.reason as Error).name, 'OsharaToolTimeoutError')
  t.ok((abortedAfterMs as number) < elapsed)
  t.same(app.oshara.stats().tools, { lookup_order: { timeout: 1 } })
})

t.test('a throwing handler: 500 with a safe message and nothing of the error; the original is logged', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url, log } = await toolApp(t, emulator, {}, async () => { throw new Error('connect ECONNREFUSED db.internal:5432 password=hunter2') })
  const reply = await emulator.callTool(await mintByRoute(app), { url, args: { order_id: '1' }, headers: HEADERS })
  t.same(reply, { status: 500, body: { error: 'The tool failed. Please try again later.', code: 'FST_OSHARA_TOOL_FAILED' } })
  t.notMatch(JSON.stringify(reply.body), /hunter2|ECONNREFUSED|db\.internal/)
  const logged = log.lines().find((line) => line.msg === 'oshara: tool handler failed; the agent gets a 500 FST_OSHARA_TOOL_FAILED')
  t.match(logged, { level: 50, tool: 'lookup_order', err: { message: /hunter2/ } })
})

t.test('a handler error with a 4xx statusCode is its answer; a result that is not JSON is a 500; undefined is null', async (t) => {
  const emulator = await startEmulator(t)
  const refusing = await toolApp(t, emulator, {}, async (args) => {
    if (args.order_id === 'none') throw new OsharaToolRefusedError('No order with that number.')
    if (args.order_id === 'gone') throw Object.assign(new Error('That order was deleted.'), { statusCode: 404, code: 'ORDER_GONE' })
    if (args.order_id === 'plain') throw Object.assign(new Error('Not yours.'), { statusCode: 403 })
    if (args.order_id === 'big') return { total: 10n }
    return undefined
  })
  const sessionId = await mintByRoute(refusing.app)
  const call = (orderId: string) => emulator.callTool(sessionId, { url: refusing.url, args: { order_id: orderId }, headers: HEADERS })
  t.same(await call('none'), { status: 422, body: { error: 'No order with that number.', code: 'FST_OSHARA_TOOL_REFUSED' } })
  t.same(await call('gone'), { status: 404, body: { error: 'That order was deleted.', code: 'ORDER_GONE' } })
  t.same(await call('plain'), { status: 403, body: { error: 'Not yours.', code: 'FST_OSHARA_TOOL_REFUSED' } })
  t.same(await call('big'), { status: 500, body: { error: 'The tool failed. Please try again later.', code: 'FST_OSHARA_TOOL_FAILED' } })
  t.same(await call('undefined'), { status: 200, body: null })
  t.same(refusing.app.oshara.stats().tools, { lookup_order: { refused: 3, failed: 1, ok: 1 } })
})

t.test('requests that are not tool calls: malformed JSON 400, a body without _session 403, errors of the app\'s own hooks', async (t) => {
  const emulator = await startEmulator(t)
  const { app, url } = await toolApp(t, emulator, {}, lookupOrder, {
    preHandler: async (request) => {
      if (request.headers['x-test'] === 'deny') throw Object.assign(new Error('Not today.'), { statusCode: 429 })
      if (request.headers['x-test'] === 'crash') throw new Error('hook bug secret-detail')
      if (request.headers['x-test'] === 'login') throw Object.assign(new Error('Log in first.'), { statusCode: 401, code: 'APP_LOGIN' })
    }
  })
  const post = async (body: string, headers: Record<string, string> = {}) => {
    const response = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...HEADERS, ...headers }, body })
    return { status: response.statusCode, body: await response.body.json() }
  }
  t.match(await post('{"order_id":'), { status: 400, body: { code: 'FST_ERR_CTP_INVALID_JSON_BODY', error: String } })
  t.match(await post('[1, 2]'), { status: 403, body: { code: 'FST_OSHARA_TOOL_FORBIDDEN' } })
  t.match(await post('{"order_id":"1","_session":{"session_id":"s","metadata":[]}}'), { status: 403, body: { code: 'FST_OSHARA_TOOL_FORBIDDEN' } })
  t.same(await post('{}', { 'x-test': 'deny' }), { status: 429, body: { error: 'Not today.', code: 'FST_OSHARA_TOOL_REFUSED' } })
  t.same(await post('{}', { 'x-test': 'crash' }), { status: 500, body: { error: 'The tool failed. Please try again later.', code: 'FST_OSHARA_TOOL_FAILED' } })
  t.same(await post('{}', { 'x-test': 'login' }), { status: 401, body: { error: 'Log in first.', code: 'APP_LOGIN' } })
  t.same(app.oshara.stats().tools, { lookup_order: { invalid_arguments: 1, forbidden: 2, refused: 1, failed: 1, unauthorized: 1 } })
})

t.test('key rotation: previousSigningKeys accepts sessions signed with an old key; without it they are refused', async (t) => {
  const emulator = await startEmulator(t)
  const before = await toolApp(t, emulator, { tools: { secret: SECRET, signingKey: OLD_SIGNING_KEY } })
  const signedWithOld = await mintByRoute(before.app)
  const during = await toolApp(t, emulator, { tools: { secret: SECRET, signingKey: SIGNING_KEY, previousSigningKeys: [OLD_SIGNING_KEY] } })
  const after = await toolApp(t, emulator, { tools: { secret: SECRET, signingKey: SIGNING_KEY } })
  t.equal((await emulator.callTool(signedWithOld, { url: during.url, args: { order_id: '1' }, headers: HEADERS })).status, 200, 'the old key is still accepted')
  t.equal((await emulator.callTool(signedWithOld, { url: after.url, args: { order_id: '1' }, headers: HEADERS })).status, 403, 'once removed, refused')
  const signedWithNew = await mintByRoute(during.app)
  t.equal((await emulator.callTool(signedWithNew, { url: after.url, args: { order_id: '1' }, headers: HEADERS })).status, 200, 'new sessions are signed with the new key')
  // Without signingKey the key is derived from the secret: the same secret, the same key.
  const derived = await toolApp(t, emulator, { tools: { secret: SECRET } })
  const derivedToo = await toolApp(t, emulator, { tools: { secret: SECRET } })
  t.equal((await emulator.callTool(await mintByRoute(derived.app), { url: derivedToo.url, args: { order_id: '1' }, headers: HEADERS })).status, 200)
  t.equal((await emulator.callTool(await mintByRoute(derived.app), { url: after.url, args: { order_id: '1' }, headers: HEADERS })).status, 403)
})

t.test('metadata that already uses _oshara_sig fails the mint (route 500, decorator rejects); nothing is sent upstream', async (t) => {
  const emulator = await startEmulator(t)
  const { app } = await toolApp(t, emulator, { metadata: () => ({ user_id: 'u', _oshara_sig: 'mine' }), limits: { concurrency: 1, key: () => 'k' } })
  const reply = await app.inject({ method: 'POST', url: '/voice-token' })
  t.equal(reply.statusCode, 500)
  t.equal(reply.json().code, 'FST_OSHARA_INVALID_SESSION')
  await t.rejects(app.oshara.createSession({ metadata: { _oshara_sig: 'x' } }), { code: 'FST_OSHARA_INVALID_SESSION', fix: /rename the _oshara_sig key/ })
  t.equal(emulator.sessions.size, 0)
  t.equal(app.oshara.stats().activeSlots, 0, 'the slot was freed')
})

t.test('signed metadata JSON cannot carry (a BigInt, a toJSON giving nothing) fails the mint with FST_OSHARA_INVALID_SESSION (route 500, decorator rejects); nothing is sent upstream', async (t) => {
  const emulator = await startEmulator(t)
  const { app } = await toolApp(t, emulator, { metadata: () => ({ user_id: 'u', n: 10n }), limits: { concurrency: 1, key: () => 'k' } })
  const reply = await app.inject({ method: 'POST', url: '/voice-token' })
  t.same(reply.json(), { statusCode: 500, code: 'FST_OSHARA_INVALID_SESSION', error: 'Internal Server Error', message: 'The voice session could not be prepared' })
  await t.rejects(app.oshara.createSession({ metadata: { n: 10n } }), { code: 'FST_OSHARA_INVALID_SESSION', detail: /Do not know how to serialize a BigInt/, fix: /no BigInt/ })
  await t.rejects(app.oshara.createSession({ metadata: { toJSON: () => undefined } }), { code: 'FST_OSHARA_INVALID_SESSION', detail: /a toJSON gives nothing to send/ })
  t.equal(emulator.sessions.size, 0)
  t.equal(app.oshara.stats().activeSlots, 0, 'the slot was freed')
})

/** A store that answers `sessionState` with a failure, and everything else as the memory store. */
class FailingStateStore extends MemorySessionStore {
  override async sessionState (): Promise<undefined> {
    throw new Error('store down')
  }
}

t.test('a store failure on the session lookup follows limits.onStoreError: deny 503, allow served without a key', async (t) => {
  const emulator = await startEmulator(t)
  const storeErrors: unknown[] = []
  const onStoreError = (message: unknown): void => { storeErrors.push(message) }
  diagnostics.subscribe('oshara:store:error', onStoreError)
  t.teardown(() => diagnostics.unsubscribe('oshara:store:error', onStoreError))
  const deny = await toolApp(t, emulator, { limits: { concurrency: 1, key: () => USER_KEY, store: new FailingStateStore() } })
  t.same(await emulator.callTool(await mintByRoute(deny.app), { url: deny.url, args: { order_id: '1' }, headers: HEADERS }),
    { status: 503, body: { error: 'The service is temporarily unavailable; try again shortly', code: 'FST_OSHARA_UNAVAILABLE' } })
  t.same(deny.app.oshara.stats().tools, { lookup_order: { unavailable: 1 } })
  const allow = await toolApp(t, emulator, { limits: { concurrency: 1, key: () => USER_KEY, store: new FailingStateStore(), onStoreError: 'allow' } })
  t.equal((await emulator.callTool(await mintByRoute(allow.app), { url: allow.url, args: { order_id: '1' }, headers: HEADERS })).status, 200)
  t.equal(allow.seen[0]?.context.key, undefined)
  t.same(storeErrors, [{ store: 'limiter', operation: 'sessionState', message: 'store down' }, { store: 'limiter', operation: 'sessionState', message: 'store down' }])
})

/** A store in another process's likeness: every call delegates to a memory store, and it is not one (so its calls are timed). */
class DelegatingStore {
  readonly memory = new MemorySessionStore()
  stateDelayMs = 0
  acquire = (request: Parameters<MemorySessionStore['acquire']>[0]) => this.memory.acquire(request)
  bind = (...args: Parameters<MemorySessionStore['bind']>) => this.memory.bind(...args)
  release = (slotId: string) => this.memory.release(slotId)
  releaseSession = (sessionId: string, key?: string) => this.memory.releaseSession(sessionId, key)
  track = (...args: Parameters<MemorySessionStore['track']>) => this.memory.track(...args)
  claimDue = (...args: Parameters<MemorySessionStore['claimDue']>) => this.memory.claimDue(...args)
  reschedule = (...args: Parameters<MemorySessionStore['reschedule']>) => this.memory.reschedule(...args)
  untrack = (...args: Parameters<MemorySessionStore['untrack']>) => this.memory.untrack(...args)
  markEnded = (sessionId: string) => this.memory.markEnded(sessionId)
  sessionsOf = (key: string) => this.memory.sessionsOf(key)
  sessionState = async (sessionId: string) => {
    if (this.stateDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.stateDelayMs))
    return await this.memory.sessionState(sessionId)
  }
}

t.test('another store: its sessionState is bounded by limits.storeTimeoutMs; tracking alone uses a store of its own', async (t) => {
  const emulator = await startEmulator(t)
  const slow = new DelegatingStore()
  const limited = await toolApp(t, emulator, { limits: { concurrency: 1, key: () => USER_KEY, store: slow, storeTimeoutMs: 50 } })
  const sessionId = await mintByRoute(limited.app)
  t.equal((await emulator.callTool(sessionId, { url: limited.url, args: { order_id: '1' }, headers: HEADERS })).status, 200, 'in time')
  t.equal(limited.seen[0]?.context.key, USER_KEY)
  slow.stateDelayMs = 1000
  t.equal((await emulator.callTool(sessionId, { url: limited.url, args: { order_id: '1' }, headers: HEADERS })).status, 503, 'slower than storeTimeoutMs: onStoreError deny')
  const tracking = new DelegatingStore()
  const tracked = await toolApp(t, emulator, { apiKey: API_KEY, onSessionEnd: () => {}, tracking: { firstCheckMs: 60_000, store: tracking } })
  const trackedId = await mintByRoute(tracked.app)
  t.same(await tracking.sessionState(trackedId), { key: undefined, ended: false }, 'tracked in that store')
  t.equal((await emulator.callTool(trackedId, { url: tracked.url, args: { order_id: '1' }, headers: HEADERS })).status, 200)
  await tracking.untrack(trackedId)
  t.equal((await emulator.callTool(trackedId, { url: tracked.url, args: { order_id: '1' }, headers: HEADERS })).status, 410, 'no longer tracked: ended')
})

t.test('a store without sessionState: tools are served without the ended check, and a warning says so', async (t) => {
  const emulator = await startEmulator(t)
  const memory = new MemorySessionStore()
  const store: SessionStore = {
    acquire: (request) => memory.acquire(request),
    bind: (slotId, sessionId, holdMs) => memory.bind(slotId, sessionId, holdMs),
    release: (slotId) => memory.release(slotId),
    releaseSession: (sessionId, key) => memory.releaseSession(sessionId, key)
  }
  const { app, url, log } = await toolApp(t, emulator, { limits: { concurrency: 1, key: () => USER_KEY, store, storeTimeoutMs: 500 } })
  t.ok(log.lines().some((line) => String(line.msg).includes('has no sessionState method')))
  const sessionId = await mintByRoute(app)
  await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId}` })
  t.equal((await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: HEADERS })).status, 200)
})

t.test('no secret, signature or metadata value in any log line or channel message', async (t) => {
  const emulator = await startEmulator(t)
  const received: string[] = []
  const channels = ['oshara:tool', 'oshara:retry', 'oshara:breaker', 'oshara:limit', 'oshara:store:error', 'oshara:session:end', 'oshara:quota']
  for (const name of channels) {
    const onMessage = (message: unknown): void => { received.push(`${name} ${JSON.stringify(message)} ${inspect(message, { depth: 10, showHidden: true })}`) }
    diagnostics.subscribe(name, onMessage)
    t.teardown(() => diagnostics.unsubscribe(name, onMessage))
  }
  const { app, url, log } = await toolApp(t, emulator, { limits: { concurrency: 5, key: () => USER_KEY } }, async (args) => {
    if (args.order_id === 'throw') throw new Error('failed')
    return { ok: true }
  })
  const sessionId = await mintByRoute(app)
  const signature = storedMetadata(emulator, sessionId)._oshara_sig as string
  await emulator.callTool(sessionId, { url, args: { order_id: ORDER_ID }, headers: HEADERS })
  await emulator.callTool(sessionId, { url, args: { order_id: 42 }, headers: HEADERS })
  await emulator.callTool(sessionId, { url, args: { order_id: 'throw' }, headers: HEADERS })
  await emulator.callTool(sessionId, { url, args: { order_id: ORDER_ID }, headers: { 'x-oshara-secret': `${SECRET}-wrong` } })
  storedMetadata(emulator, sessionId).user_id = 'victim'
  await emulator.callTool(sessionId, { url, args: { order_id: ORDER_ID }, headers: HEADERS })
  const messages = received.filter((text) => text.startsWith('oshara:tool '))
  t.equal(messages.length, 5, 'one oshara:tool message per call')
  t.same(JSON.parse(messages[0]?.slice('oshara:tool '.length, messages[0].indexOf('} ') + 1) as string), {
    name: 'lookup_order', sessionId, outcome: 'ok', statusCode: 200, durationMs: Number(JSON.parse(messages[0]?.slice('oshara:tool '.length, messages[0].indexOf('} ') + 1) as string).durationMs)
  })
  t.ok(log.lines().length > 5, 'the app logged')
  const everything = log.text() + received.join('\n')
  for (const value of [SECRET, SIGNING_KEY, signature, signature.split('.')[3] as string, EMAIL, USER_ID, USER_KEY, ORDER_ID, 'org-1']) {
    t.notOk(everything.includes(value), `${value.slice(0, 12)}... appears nowhere`)
  }
})

t.test('stats() and oshara:tool report each call\'s outcome', async (t) => {
  const emulator = await startEmulator(t)
  const messages: Array<Record<string, unknown>> = []
  const onMessage = (message: unknown): void => { messages.push(message as Record<string, unknown>) }
  diagnostics.subscribe('oshara:tool', onMessage)
  t.teardown(() => diagnostics.unsubscribe('oshara:tool', onMessage))
  const { app, url } = await toolApp(t, emulator)
  t.same(app.oshara.stats().tools, { lookup_order: {} }, 'a registered tool appears before its first call')
  const sessionId = await mintByRoute(app)
  await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: HEADERS })
  await emulator.callTool(sessionId, { url, args: { order_id: '1' } })
  await emulator.callTool(await mintAroundTheApp(emulator, {}), { url, args: { order_id: '1' }, headers: HEADERS })
  await emulator.callTool(sessionId, { url, args: {}, headers: HEADERS })
  t.same(app.oshara.stats().tools, { lookup_order: { ok: 1, unauthorized: 1, forbidden: 1, invalid_arguments: 1 } })
  t.match(messages, [
    { name: 'lookup_order', sessionId, outcome: 'ok', statusCode: 200, durationMs: Number },
    { name: 'lookup_order', sessionId: undefined, outcome: 'unauthorized', statusCode: 401 },
    { name: 'lookup_order', outcome: 'forbidden', statusCode: 403 },
    { name: 'lookup_order', sessionId, outcome: 'invalid_arguments', statusCode: 400 }
  ])
})

t.test('fastify.oshara.tool(): refused definitions, and no tools option', async (t) => {
  const emulator = await startEmulator(t)
  const { app } = await toolApp(t, emulator)
  const handler = async (): Promise<null> => null
  const define = (name: unknown, definition: unknown) => () => { app.oshara.tool(name as string, definition as OsharaToolDefinition) }
  t.throws(define('lookup order', { args: OrderArgs, handler }), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /tool name.*letters, digits/ })
  t.throws(define(42, { args: OrderArgs, handler }), { message: /tool name/ })
  t.throws(define('lookup_order', { args: OrderArgs, handler }), { message: /tool\("lookup_order"\)" is already registered/ })
  t.throws(define('other', null), { message: /must be given \{ args, handler \}/ })
  t.throws(define('other', { args: { type: 'string' }, handler }), { message: /tool\("other"\)\.args" must be a TypeBox schema/ })
  t.throws(define('other', { args: null, handler }), { message: /args" must be a TypeBox schema/ })
  t.throws(define('other', { args: OrderArgs, handler: 'no' }), { message: /handler" must be a function/ })
  t.throws(define('other', { args: OrderArgs, handler, bodyLimit: -1 }), { message: /tool\("other"\)\.bodyLimit/ })
  t.throws(define('other', { args: OrderArgs, handler, params: {} }), { message: /tool\("other"\)\.params" is not a known option/ })
  t.throws(define('other', { args: OrderArgs, handler, logLevel: 'loud' }), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /tool\("other"\)\.logLevel" must be one of 'fatal'/ })
  t.throws(define('other', { args: OrderArgs, handler, schema: { tags: 'a' } }), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /tool\("other"\)\.schema\.tags" must be an array of strings/ })
  const plain = Fastify()
  t.teardown(() => plain.close())
  await plain.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', baseUrl: emulator.url, public: true })
  t.throws(() => { plain.oshara.tool('lookup_order', { args: OrderArgs, handler }) }, { code: 'FST_OSHARA_INVALID_OPTIONS', message: /option "tools" is not set/ })
  t.throws(define('late', { args: OrderArgs, handler }), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /tool\("late"\)" came after the app started/ })
  t.notOk('late' in app.oshara.stats().tools, 'a refused tool is not counted')
})

t.test('tool routes take the app\'s route options: docs, bodyLimit, hooks', async (t) => {
  const emulator = await startEmulator(t)
  const order: string[] = []
  const { app, url } = await toolApp(t, emulator, {}, lookupOrder, {
    bodyLimit: 64,
    schema: { summary: 'Look up an order', tags: ['tools'] },
    onRequest: async () => { order.push('onRequest') },
    onResponse: [async () => { order.push('onResponse') }]
  })
  const sessionId = await mintByRoute(app)
  t.equal((await emulator.callTool(sessionId, { url, args: { order_id: '1', padding: 'x'.repeat(100) }, headers: HEADERS })).status, 413)
  t.same(order, ['onRequest', 'onResponse'])
  t.same(app.oshara.stats().tools, { lookup_order: { invalid_arguments: 1 } })
  t.same(await emulator.callTool(sessionId, { url, args: { order_id: '1' }, headers: { 'x-oshara-secret': 'nope' } }).then((reply) => reply.status), 401)
  t.same(order, ['onRequest', 'onResponse', 'onResponse'], 'a refused secret stops before the app\'s onRequest hooks')
})

t.test('emulator.callTool rejects for a session it did not mint, and reads a body that is not JSON as text', async (t) => {
  const emulator = await startEmulator(t)
  await t.rejects(emulator.callTool('sess_unknown', { url: `${emulator.url}/x` }), { message: /minted no session "sess_unknown"/ })
  const sessionId = await mintAroundTheApp(emulator, { b: 1, a: { d: 1, c: 2 } })
  const reply = await emulator.callTool(sessionId, { url: `${emulator.url}/not-a-route` })
  t.equal(reply.status, 404)
  const echo = Fastify()
  t.teardown(() => echo.close())
  echo.post('/echo', async (request, reply) => reply.type('text/plain').send(JSON.stringify(request.body)))
  await echo.listen({ port: 0, host: '127.0.0.1' })
  const { port } = echo.server.address() as { port: number }
  const echoed = await emulator.callTool(sessionId, { url: `http://127.0.0.1:${port}/echo`, args: { q: 1 } })
  t.same(echoed, { status: 200, body: { q: 1, _session: { session_id: sessionId, metadata: { a: { c: 2, d: 1 }, b: 1 } } } })
  const text = Fastify()
  t.teardown(() => text.close())
  text.post('/text', async () => 'plain words')
  await text.listen({ port: 0, host: '127.0.0.1' })
  const textPort = (text.server.address() as { port: number }).port
  t.same(await emulator.callTool(sessionId, { url: `http://127.0.0.1:${textPort}/text` }), { status: 200, body: 'plain words' })
  const response = await request(`${emulator.url}/api/agents/agent-session/`, { method: 'POST', headers: { 'content-type': 'application/json', origin: ORIGIN }, body: '{"agent":"support-bot"}' })
  const { session_id: withoutMetadata } = await response.body.json() as { session_id: string }
  t.same((await emulator.callTool(withoutMetadata, { url: `http://127.0.0.1:${port}/echo` })).body, { _session: { session_id: withoutMetadata, metadata: {} } }, 'a session minted without metadata: {}')
})
