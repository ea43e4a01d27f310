import t, { type Test } from 'tap'
import { install } from '@sinonjs/fake-timers'
import Fastify, { type FastifyInstance } from 'fastify'
import osharaVoice, { MemorySessionStore, RedisSessionStore, type OsharaLimitsOptions } from '../lib/index.js'
import type { SessionStore } from '../lib/stores.js'
import type { OsharaEmulator } from '../lib/emulator.js'
import { buildApp, logCapture, postToken } from './helpers/app.js'
import { ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'
import { redisClient, redisServerFor } from './helpers/redis-server.js'

// The concurrent-session limiter of SPEC section 6, through the route, on both stores.

const byUser = (request: { headers: Record<string, unknown> }): string => String(request.headers['x-user'] ?? 'anonymous')

function limitedApp (t: Test, emulator: OsharaEmulator, limits: Partial<OsharaLimitsOptions>, extra = {}): Promise<FastifyInstance> {
  return buildApp(t, emulator, { limits: { concurrency: 3, key: byUser, ...limits }, ...extra })
}

function post (app: FastifyInstance, user: string) {
  return postToken(app, undefined, { 'x-user': user })
}

function release (app: FastifyInstance, user: string, sessionId: string) {
  return app.inject({ method: 'DELETE', url: `/voice-token/${sessionId}`, headers: { 'x-user': user } })
}

async function parallelFor (t: Test, store: () => SessionStore | Promise<SessionStore>): Promise<void> {
  t.test('50 parallel requests for one key, concurrency 3: exactly 3 sessions, 47 x 429', async (t) => {
    const emulator = await startEmulator(t)
    const app = await limitedApp(t, emulator, { store: await store() })
    emulator.fault({ delayMs: 50 }, 50)
    const replies = await Promise.all(Array.from({ length: 50 }, () => post(app, 'ann')))
    const statuses = replies.map((reply) => reply.statusCode)
    t.equal(statuses.filter((status) => status === 200).length, 3)
    t.equal(statuses.filter((status) => status === 429).length, 47)
    t.equal(emulator.sessions.size, 3, 'only 3 sessions were minted upstream')
    const limited = replies.find((reply) => reply.statusCode === 429)
    t.equal(limited?.json().code, 'FST_OSHARA_SESSION_LIMIT')
    t.ok(Number(limited?.headers['retry-after']) >= 1, 'Retry-After of at least 1 s')
  })
}

t.test('memory store', async (t) => {
  await parallelFor(t, () => new MemorySessionStore())
})

t.test('the default store is a MemorySessionStore; Retry-After is the time until the oldest slot frees', async (t) => {
  const emulator = await startEmulator(t)
  const app = await limitedApp(t, emulator, { concurrency: 1, holdMs: 30_000 })
  t.equal((await post(app, 'ann')).statusCode, 200)
  const limited = await post(app, 'ann')
  t.equal(limited.statusCode, 429)
  t.equal(limited.headers['retry-after'], '30')
  t.equal((await post(app, 'bob')).statusCode, 200, 'per key')
})

t.test('holdMs defaults to the session lifetime (expires_in_seconds)', async (t) => {
  const emulator = await startEmulator(t, { tokenTtlSeconds: 120 })
  const app = await limitedApp(t, emulator, { concurrency: 1 })
  t.equal((await post(app, 'ann')).statusCode, 200)
  t.equal((await post(app, 'ann')).headers['retry-after'], '120')
})

t.test('global caps all keys together', async (t) => {
  const emulator = await startEmulator(t)
  const app = await limitedApp(t, emulator, { concurrency: 5, global: 2 })
  t.equal((await post(app, 'a')).statusCode, 200)
  t.equal((await post(app, 'b')).statusCode, 200)
  t.equal((await post(app, 'c')).statusCode, 429)
})

t.test('a failed mint (503, 500, timeout, upstream 429) leaves the count where it was', async (t) => {
  const emulator = await startEmulator(t)
  // A timeout far from the fault's delay: on a loaded machine, the attempt still reaches the emulator before it times out.
  const app = await limitedApp(t, emulator, { concurrency: 1 }, { timeoutMs: 1000, retry: false })
  for (const fault of [{ status: 503 }, { status: 500 }, { delayMs: 60_000 }, { status: 429 }]) {
    emulator.fault(fault)
    t.not((await post(app, 'ann')).statusCode, 200)
  }
  t.equal((await post(app, 'ann')).statusCode, 200, 'the one slot is still free')
})

t.test('the emulator\'s own max_concurrent_sessions 429 and our limiter never double count', async (t) => {
  const emulator = await startEmulator(t, { characters: [{ slug: 'support-bot', allowed_origins: [ORIGIN], max_concurrent_sessions: 1 }] })
  const app = await limitedApp(t, emulator, { concurrency: 2 })
  const first = await post(app, 'ann')
  t.equal(first.statusCode, 200)
  const upstream = await post(app, 'ann')
  t.equal(upstream.statusCode, 429)
  t.equal(upstream.json().code, 'FST_OSHARA_UPSTREAM_LIMIT', 'the plan limit, not ours')
  emulator.endSession(first.json().session_id)
  t.equal((await post(app, 'ann')).statusCode, 200, 'our second slot was not held by the upstream refusal')
})

t.test('DELETE frees the slot; another key cannot; unknown ids are 404', async (t) => {
  const emulator = await startEmulator(t)
  const app = await limitedApp(t, emulator, { concurrency: 1 })
  const session = (await post(app, 'ann')).json().session_id as string
  const stranger = await release(app, 'bob', session)
  t.equal(stranger.statusCode, 404)
  t.equal(stranger.json().code, 'FST_OSHARA_SESSION_NOT_FOUND')
  t.equal((await post(app, 'ann')).statusCode, 429, 'still held')
  const own = await release(app, 'ann', session)
  t.equal(own.statusCode, 204)
  t.equal(own.body, '')
  t.equal((await release(app, 'ann', session)).statusCode, 404, 'only once')
  t.equal((await post(app, 'ann')).statusCode, 200)
})

t.test('DELETE runs the same routeOptions hooks (auth)', async (t) => {
  const emulator = await startEmulator(t)
  const app = await limitedApp(t, emulator, { concurrency: 1 }, {
    routeOptions: {
      onRequest: async (request: { headers: Record<string, unknown> }, reply: { code: (n: number) => { send: (b: unknown) => unknown } }) => {
        if (request.headers['x-user'] === undefined) return reply.code(401).send({ error: 'login' })
      },
      preValidation: async () => {}
    }
  })
  const session = (await post(app, 'ann')).json().session_id as string
  t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${session}` })).statusCode, 401)
  t.equal((await release(app, 'ann', session)).statusCode, 204)
})

t.test('expiry frees the slot (short holdMs)', async (t) => {
  // The memory store's clock is performance.now(): faked, so the hold passes when the test says.
  const clock = install({ toFake: ['performance'] })
  t.teardown(() => clock.uninstall())
  const emulator = await startEmulator(t)
  const app = await limitedApp(t, emulator, { concurrency: 1, holdMs: 100 })
  t.equal((await post(app, 'ann')).statusCode, 200)
  t.equal((await post(app, 'ann')).statusCode, 429)
  clock.tick(99)
  t.equal((await post(app, 'ann')).statusCode, 429, 'held until holdMs has passed')
  clock.tick(1)
  t.equal((await post(app, 'ann')).statusCode, 200)
})

t.test('onSession throwing releases the slot', async (t) => {
  const emulator = await startEmulator(t)
  let fail = true
  const app = await limitedApp(t, emulator, { concurrency: 1 }, { onSession: () => { if (fail) throw new Error('db down') } })
  t.equal((await post(app, 'ann')).statusCode, 500)
  fail = false
  t.equal((await post(app, 'ann')).statusCode, 200)
})

t.test('the decorator: createSession with a key is limited; releaseSession frees', async (t) => {
  const emulator = await startEmulator(t)
  const app = await limitedApp(t, emulator, { concurrency: 1 })
  const session = await app.oshara.createSession({}, { key: 'device-1' })
  await t.rejects(app.oshara.createSession({}, { key: 'device-1' }), { code: 'FST_OSHARA_SESSION_LIMIT', statusCode: 429 })
  t.ok(await app.oshara.createSession({}), 'without a key: not limited')
  t.equal(await app.oshara.releaseSession(session.session_id, { key: 'device-2' }), false, 'not the owner')
  t.equal(await app.oshara.releaseSession(session.session_id, { key: 'device-1' }), true)
  t.equal(await app.oshara.releaseSession(session.session_id), false)
  t.ok(await app.oshara.createSession({}, { key: 'device-1' }))
})

t.test('the limiter key defaults to request.ip', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { limits: { concurrency: 1 } })
  t.equal((await postToken(app)).statusCode, 200)
  t.equal((await postToken(app)).statusCode, 429)
  t.equal((await app.inject({ method: 'POST', url: '/voice-token', remoteAddress: '10.0.0.9' })).statusCode, 200)
})

/** A store whose every call fails or hangs, like a Redis that is down. */
function brokenStore (mode: 'throw' | 'hang'): SessionStore {
  const fail = (): Promise<never> => mode === 'throw' ? Promise.reject(new Error('store down')) : new Promise(() => {})
  return { acquire: fail, bind: fail, release: fail, releaseSession: fail }
}

t.test('store failure: deny answers 503 within storeTimeoutMs; allow serves and warns', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const deny = await limitedApp(t, emulator, { store: brokenStore('hang'), storeTimeoutMs: 100 }, {})
  const started = Date.now()
  const denied = await post(deny, 'ann')
  t.equal(denied.statusCode, 503)
  t.equal(denied.json().code, 'FST_OSHARA_UNAVAILABLE')
  t.equal(denied.headers['retry-after'], '5')
  t.ok(Date.now() - started < 500, 'within the bound')
  t.equal(emulator.requests.length, 0)

  const allow = await buildApp(t, emulator, { limits: { concurrency: 1, store: brokenStore('throw'), onStoreError: 'allow' } }, { logger: { level: 'warn', stream: capture.stream } })
  t.equal((await postToken(allow)).statusCode, 200)
  t.equal((await postToken(allow)).statusCode, 200, 'not limited while the store is down')
  t.match(capture.lines().find((line) => /serving without/.test(String(line.msg))), { level: 40, msg: /serving without a session limit/, storeError: /store down/ })
  const release = await allow.inject({ method: 'DELETE', url: '/voice-token/sess_x' })
  t.equal(release.statusCode, 503, 'a release cannot be confirmed while the store is down')
})

t.test('a store that fails after acquire: bind and release failures are logged, never thrown', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const memory = new MemorySessionStore()
  const flaky: SessionStore = {
    acquire: (request) => memory.acquire(request),
    bind: () => Promise.reject(new Error('bind failed')),
    release: () => Promise.reject(new Error('release failed')),
    releaseSession: (id, key) => memory.releaseSession(id, key)
  }
  const app = await buildApp(t, emulator, { retry: false, limits: { concurrency: 3, key: byUser, store: flaky } }, { logger: { level: 'warn', stream: capture.stream } })
  t.equal((await post(app, 'ann')).statusCode, 200)
  emulator.fault({ status: 500 })
  t.equal((await post(app, 'ann')).statusCode, 502)
  const messages = capture.lines().map((line) => line.msg)
  t.ok(messages.includes('oshara: session store failed to bind the slot'))
  t.ok(messages.includes('oshara: session store failed to release a slot; it frees when it expires'))
})

t.test('Redis store', async (t) => {
  const server = await redisServerFor(t)
  if (server === undefined) return
  let prefixes = 0
  const store = async (): Promise<SessionStore> => new RedisSessionStore({ client: await redisClient(t, server), prefix: `test${++prefixes}:` })

  await parallelFor(t, store)

  t.test('two Fastify instances sharing one Redis enforce one global limit', async (t) => {
    const emulator = await startEmulator(t)
    const apps = await Promise.all([0, 1].map(async () => {
      const app = Fastify()
      await app.register(osharaVoice, {
        origin: ORIGIN,
        agent: 'support-bot',
        baseUrl: emulator.url,
        limits: { concurrency: 100, global: 5, key: byUser, store: new RedisSessionStore({ client: await redisClient(t, server), prefix: 'shared:' }) }
      })
      t.teardown(() => app.close())
      return app
    }))
    emulator.fault({ delayMs: 30 }, 100)
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => post(apps[i % 2] as FastifyInstance, `user-${i}`)))
    t.equal(replies.filter((reply) => reply.statusCode === 200).length, 5)
    t.equal(replies.filter((reply) => reply.statusCode === 429).length, 95)
    t.equal(emulator.sessions.size, 5)
    const session = replies.find((reply) => reply.statusCode === 200)
    const owner = `user-${replies.indexOf(session as typeof replies[number])}`
    t.equal((await release(apps[1] as FastifyInstance, owner, session?.json().session_id)).statusCode, 204, 'released through the other instance')
    t.equal((await post(apps[0] as FastifyInstance, 'late')).statusCode, 200)
  })

  t.test('Redis stopped mid-test: deny -> 503 within the bound, allow -> 200 and a warning, back -> limits hold', async (t) => {
    const emulator = await startEmulator(t)
    const capture = logCapture()
    const client = await redisClient(t, server, { enableOfflineQueue: true, retryStrategy: () => 50 })
    const redisStore = new RedisSessionStore({ client, prefix: 'outage:' })
    const deny = await buildApp(t, emulator, { path: '/deny', decorator: false, limits: { concurrency: 1, key: byUser, store: redisStore, storeTimeoutMs: 200 } })
    const allow = await buildApp(t, emulator, { path: '/allow', decorator: false, limits: { concurrency: 1, key: byUser, store: redisStore, storeTimeoutMs: 200, onStoreError: 'allow' } }, { logger: { level: 'warn', stream: capture.stream } })
    const postTo = (app: FastifyInstance, path: string) => app.inject({ method: 'POST', url: path, headers: { 'x-user': 'ann' } })

    t.equal((await postTo(deny, '/deny')).statusCode, 200)
    t.equal((await postTo(deny, '/deny')).statusCode, 429)
    await server.stop()
    const started = Date.now()
    const denied = await postTo(deny, '/deny')
    t.equal(denied.statusCode, 503)
    t.equal(denied.json().code, 'FST_OSHARA_UNAVAILABLE')
    t.ok(Date.now() - started < 1000, `denied within the bound (${Date.now() - started} ms)`)
    t.equal((await postTo(allow, '/allow')).statusCode, 200)
    t.equal((await postTo(allow, '/allow')).statusCode, 200, 'unlimited while Redis is down')
    t.ok(capture.lines().some((line) => line.level === 40 && /serving without a session limit/.test(String(line.msg))))

    // This redis-server keeps nothing on disk, so the slots of before the outage are gone with it.
    await server.restart()
    await client.ping()
    t.equal((await postTo(deny, '/deny')).statusCode, 200)
    t.equal((await postTo(deny, '/deny')).statusCode, 429, 'limits hold again')
    t.equal((await postTo(allow, '/allow')).statusCode, 429, 'for both policies (one store, one key)')
    t.equal(sessionRequests(emulator).length, 4)
  })
})
