import t, { type Test } from 'tap'
import { install } from '@sinonjs/fake-timers'
import type { FastifyInstance } from 'fastify'
import { MemorySessionStore, RedisSessionStore, type OsharaVoiceOptions } from '../lib/index.js'
import type { IdempotencyBeginRequest, IdempotencyBeginResult, IdempotencyStore } from '../lib/stores.js'
import type { OsharaEmulator } from '../lib/emulator.js'
import { buildApp, logCapture, postToken, registerPublicError } from './helpers/app.js'
import { failure, sessionRequests, startEmulator } from './helpers/emulator.js'
import { redisClient, redisServerFor, testPrefixes } from './helpers/redis-server.js'
import { waitUntil } from './helpers/wait.js'

// Idempotent minting (SPEC section 17): a repeated POST with the same Idempotency-Key replays the first reply.

const byUser = (request: { headers: Record<string, unknown> }): string => String(request.headers['x-user'] ?? 'anonymous')

function post (app: FastifyInstance, idempotencyKey: string | undefined, { user = 'ann', body }: { user?: string, body?: unknown } = {}) {
  const headers: Record<string, string> = { 'x-user': user }
  if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey
  return postToken(app, body, headers)
}

function idempotentApp (t: Test, emulator: OsharaEmulator, options: Partial<OsharaVoiceOptions> = {}): Promise<FastifyInstance> {
  return buildApp(t, emulator, { limits: { concurrency: 5, key: byUser }, idempotency: true, public: true, ...options })
}

/** A gate the app's `beforeSession` waits at, so that a request stays in flight as long as the test wants. */
function gate (): { beforeSession: () => Promise<void>, entered: () => boolean, open: () => void } {
  let open: () => void = () => {}
  const opened = new Promise<void>((resolve) => { open = resolve })
  let entered = false
  return { beforeSession: async () => { entered = true; await opened }, entered: () => entered, open }
}

t.test('a repeat after success replays the reply: same session and token, no upstream call, no slot, no quota count', async (t) => {
  const emulator = await startEmulator(t)
  const app = await idempotentApp(t, emulator, { limits: { concurrency: 1, key: byUser }, quota: { key: byUser, window: 'day', sessions: 1 } })
  const first = await post(app, 'tap-1')
  t.equal(first.statusCode, 200)
  t.equal(first.headers['idempotent-replayed'], undefined, 'the first reply is no replay')
  for (let i = 0; i < 3; i++) {
    const again = await post(app, 'tap-1')
    t.equal(again.statusCode, 200, 'neither the concurrency limit nor the quota (both used up) refuses a replay')
    t.equal(again.body, first.body, 'the same bytes')
    t.equal(again.headers['idempotent-replayed'], 'true')
    t.equal(again.headers['cache-control'], 'no-store')
    t.match(again.headers['content-type'], /^application\/json/)
  }
  t.equal(sessionRequests(emulator).length, 1, 'one upstream call')
  t.equal((await app.oshara.usage('ann')).sessions, 1, 'counted once')
  t.equal(app.oshara.stats().activeSlots, 1, 'one slot')
  t.equal((await post(app, 'tap-2')).json().code, 'FST_OSHARA_QUOTA_EXCEEDED', 'another key is another request')
})

t.test('without the option the header is ignored; false is off', async (t) => {
  for (const idempotency of [undefined, false]) {
    const emulator = await startEmulator(t)
    const app = await buildApp(t, emulator, { idempotency, public: true })
    const [a, b] = [await post(app, 'tap-1'), await post(app, 'tap-1')]
    t.not(a.json().session_id, b.json().session_id)
    t.equal(b.headers['idempotent-replayed'], undefined)
  }
})

t.test('while the first is in flight, a repeat gets 409 with Retry-After: 1, and once it lands, the reply', async (t) => {
  const emulator = await startEmulator(t)
  const { beforeSession, entered, open } = gate()
  const app = await idempotentApp(t, emulator, { beforeSession })
  const first = post(app, 'tap-1')
  await waitUntil(entered, 'the first request is in flight')
  const repeat = await post(app, 'tap-1')
  t.equal(repeat.statusCode, 409)
  t.equal(repeat.headers['retry-after'], '1')
  t.match(repeat.json(), { code: 'FST_OSHARA_IDEMPOTENCY_IN_PROGRESS', message: /still in progress/ })
  t.equal((await post(app, 'tap-1', { body: { language: 'fr' } })).statusCode, 422, 'another body while in flight')
  open()
  const landed = await first
  t.equal(landed.statusCode, 200)
  t.equal((await post(app, 'tap-1')).body, landed.body)
  t.equal(sessionRequests(emulator).length, 1)
})

t.test('the same key with another body gets 422; the first reply is kept', async (t) => {
  const emulator = await startEmulator(t)
  const app = await idempotentApp(t, emulator)
  const first = await post(app, 'tap-1', { body: { language: 'en' } })
  const other = await post(app, 'tap-1', { body: { language: 'fr' } })
  t.equal(other.statusCode, 422)
  t.match(other.json(), { code: 'FST_OSHARA_IDEMPOTENCY_KEY_REUSED', message: 'This Idempotency-Key was used for a different request.' })
  t.equal((await post(app, 'tap-1', { body: { language: 'en' } })).body, first.body)
  const bare = await post(app, 'tap-2')
  t.equal((await post(app, 'tap-2', { body: {} })).body, bare.body, 'no body and an empty object are the same request')
})

t.test('a key that is not 1 to 255 visible ASCII characters is a 400, before anything runs', async (t) => {
  const emulator = await startEmulator(t)
  const app = await idempotentApp(t, emulator)
  for (const bad of ['', 'a b', 'x'.repeat(256), 'caf\u00e9', '\ttab']) {
    const reply = await app.inject({ method: 'POST', url: '/voice-token', headers: { 'idempotency-key': bad } })
    t.equal(reply.statusCode, 400, JSON.stringify(bad))
    t.match(reply.json(), { code: 'FST_OSHARA_INVALID_IDEMPOTENCY_KEY', message: 'Idempotency-Key must be 1 to 255 visible ASCII characters.' })
  }
  t.equal((await post(app, '!'.repeat(255))).statusCode, 200, '255 characters')
  t.equal((await post(app, '~')).statusCode, 200, 'one character')
  t.equal(sessionRequests(emulator).length, 2)
})

t.test('failures are not replayed: a repeat after one tries afresh', async (t) => {
  t.test('an upstream failure', async (t) => {
    const emulator = await startEmulator(t)
    const app = await idempotentApp(t, emulator)
    emulator.fault({ status: 500 })
    t.equal((await post(app, 'tap-1')).statusCode, 502)
    const retried = await post(app, 'tap-1')
    t.equal(retried.statusCode, 200)
    t.equal(retried.headers['idempotent-replayed'], undefined)
    t.equal(sessionRequests(emulator).length, 2)
  })
  t.test('our own 429: the repeat is checked again, and passes once a slot is free', async (t) => {
    const emulator = await startEmulator(t)
    const app = await idempotentApp(t, emulator, { limits: { concurrency: 1, key: byUser } })
    const held = (await post(app, undefined)).json()
    t.equal((await post(app, 'tap-1')).statusCode, 429)
    t.equal((await post(app, 'tap-1')).statusCode, 429, 'checked again, not replayed')
    await app.inject({ method: 'DELETE', url: `/voice-token/${held.session_id as string}`, headers: { 'x-user': 'ann' } })
    t.equal((await post(app, 'tap-1')).statusCode, 200)
  })
  t.test('onSession throwing', async (t) => {
    const emulator = await startEmulator(t)
    let throws = true
    const app = await idempotentApp(t, emulator, { onSession: () => { if (throws) throw new Error('database down') } })
    t.equal((await post(app, 'tap-1')).statusCode, 500)
    throws = false
    t.equal((await post(app, 'tap-1')).statusCode, 200)
    t.equal(sessionRequests(emulator).length, 2)
  })
})

t.test('the scope is the limiter key, or the IP without limits', async (t) => {
  t.test('limiter key', async (t) => {
    const emulator = await startEmulator(t)
    const app = await idempotentApp(t, emulator)
    const ann = await post(app, 'tap-1', { user: 'ann' })
    const bob = await post(app, 'tap-1', { user: 'bob' })
    t.not(ann.json().session_id, bob.json().session_id)
    t.equal(bob.headers['idempotent-replayed'], undefined)
  })
  t.test('IP', async (t) => {
    const emulator = await startEmulator(t)
    const app = await buildApp(t, emulator, { idempotency: { ttlMs: 60_000 }, public: true })
    const from = (remoteAddress: string) => app.inject({ method: 'POST', url: '/voice-token', remoteAddress, headers: { 'idempotency-key': 'tap-1' } })
    const a = await from('10.0.0.1')
    t.equal((await from('10.0.0.1')).body, a.body)
    t.not((await from('10.0.0.2')).json().session_id, a.json().session_id)
  })
})

t.test('a custom response is replayed as sent', async (t) => {
  const emulator = await startEmulator(t)
  const app = await idempotentApp(t, emulator, { response: (session) => ({ id: session.session_id, token: session.token, extra: '\u00e9' }) })
  const first = await post(app, 'tap-1')
  t.same(Object.keys(first.json()), ['id', 'token', 'extra'])
  t.equal((await post(app, 'tap-1')).body, first.body)
})

t.test('the stored reply never appears in the logs', async (t) => {
  const emulator = await startEmulator(t)
  const logs = logCapture()
  const app = await idempotentApp(t, emulator, {})
  // buildApp's Fastify options are its fourth argument.
  const logged = await buildApp(t, emulator, { limits: { concurrency: 5, key: byUser }, idempotency: true, public: true }, { logger: { level: 'trace', stream: logs.stream } })
  const first = await post(logged, 'tap-1')
  await post(logged, 'tap-1')
  t.equal(logs.text().includes(first.json().token as string), false, 'no token')
  t.equal((await post(app, 'tap-1')).statusCode, 200)
})

t.test('a reply is replayed for ttlMs, and never past its token\'s lifetime', async (t) => {
  const clock = install({ toFake: ['performance'] })
  t.teardown(() => clock.uninstall())
  t.test('ttlMs', async (t) => {
    const emulator = await startEmulator(t)
    const app = await idempotentApp(t, emulator, { idempotency: { ttlMs: 1000 } })
    const first = await post(app, 'tap-1')
    clock.tick(999)
    t.equal((await post(app, 'tap-1')).body, first.body)
    clock.tick(1)
    t.not((await post(app, 'tap-1')).json().session_id, first.json().session_id)
  })
  t.test('the token\'s lifetime', async (t) => {
    const emulator = await startEmulator(t, { tokenTtlSeconds: 2 })
    const app = await idempotentApp(t, emulator)
    const first = await post(app, 'tap-1')
    clock.tick(1999)
    t.equal((await post(app, 'tap-1')).body, first.body)
    clock.tick(1)
    t.not((await post(app, 'tap-1')).json().session_id, first.json().session_id)
  })
})

t.test('register', async (t) => {
  t.match(await registerPublicError({ idempotency: { ttlMs: 3_600_001 } }), {
    code: 'FST_OSHARA_INVALID_OPTIONS',
    message: /option "idempotency\.ttlMs" must be an integer between 1 and 3600000, got number 3600001\. Fix: a replayed reply carries the first token, which lives expires_in_seconds/
  })
  t.match(await registerPublicError({ idempotency: { ttlMs: 0 } }), { message: /"idempotency\.ttlMs" must be an integer between 1 and 3600000/ })
  t.match(await registerPublicError({ idempotency: 'yes' as never }), { message: /option "idempotency" must be an object/ })
  t.match(await registerPublicError({ idempotency: { store: {} as never } }), {
    message: /option "idempotency\.store" does not implement beginIdempotent, completeIdempotent, abandonIdempotent, which idempotency needs/
  })
  const limitsOnly = { acquire: async () => ({ ok: true, slotId: '1' }), bind: async () => true, release: async () => {}, releaseSession: async () => true }
  t.match(await registerPublicError({ idempotency: true, limits: { concurrency: 1, store: limitsOnly as never } }), {
    message: /option "limits\.store" does not implement beginIdempotent, completeIdempotent, abandonIdempotent.*Fix: .*or pass idempotency: \{ store \}/
  })
  const emulator = await startEmulator(t)
  const store = new MemorySessionStore()
  const app = await buildApp(t, emulator, { idempotency: { store }, limits: { concurrency: 1, store: limitsOnly as never }, public: true })
  t.equal((await post(app, 'tap-1')).statusCode, 200, 'idempotency.store beside a limits store without the methods')
})

t.test('the decorator: createSession(input, { idempotencyKey })', async (t) => {
  const emulator = await startEmulator(t)
  const app = await idempotentApp(t, emulator, { route: false })
  const first = await app.oshara.createSession({ metadata: { user_id: 'u1' } }, { idempotencyKey: 'call-1', key: 'ann' })
  const again = await app.oshara.createSession({ metadata: { user_id: 'u1' } }, { idempotencyKey: 'call-1', key: 'ann' })
  t.same(again, first, 'the same session')
  t.equal(sessionRequests(emulator).length, 1)
  t.not((await app.oshara.createSession({ metadata: { user_id: 'u1' } }, { idempotencyKey: 'call-1', key: 'bob' })).session_id, first.session_id, 'scoped by key')
  t.not((await app.oshara.createSession({}, { idempotencyKey: 'call-1' })).session_id, first.session_id, 'no key is a scope of its own')
  t.match(await failure(app.oshara.createSession({ metadata: { user_id: 'u2' } }, { idempotencyKey: 'call-1', key: 'ann' })), { code: 'FST_OSHARA_IDEMPOTENCY_KEY_REUSED', statusCode: 422 })
  t.match(await failure(app.oshara.createSession({}, { idempotencyKey: 'bad key' })), { code: 'FST_OSHARA_INVALID_IDEMPOTENCY_KEY', statusCode: 400 })
  emulator.fault({ status: 500 })
  t.match(await failure(app.oshara.createSession({}, { idempotencyKey: 'call-2' })), { code: 'FST_OSHARA_UPSTREAM_ERROR' })
  t.ok((await app.oshara.createSession({}, { idempotencyKey: 'call-2' })).session_id, 'a failure is not replayed')
  emulator.fault({ delayMs: 200 })
  const inFlight = app.oshara.createSession({}, { idempotencyKey: 'call-3' })
  await emulator.waitForRequest((request) => request.fault?.delayMs === 200)
  t.match(await failure(app.oshara.createSession({}, { idempotencyKey: 'call-3' })), { code: 'FST_OSHARA_IDEMPOTENCY_IN_PROGRESS', statusCode: 409, retryAfterMs: 1000 })
  await inFlight
  t.match(app.oshara.stats().failed, { FST_OSHARA_IDEMPOTENCY_KEY_REUSED: 1, FST_OSHARA_IDEMPOTENCY_IN_PROGRESS: 1 })
})

t.test('the decorator refuses idempotencyKey without the option', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { route: false })
  t.match(await failure(app.oshara.createSession({}, { idempotencyKey: 'call-1' })), {
    code: 'FST_OSHARA_INVALID_OPTIONS', message: /option "idempotency" is not set, so createSession cannot honour options\.idempotencyKey/
  })
  t.equal(sessionRequests(emulator).length, 0)
})

/** An `IdempotencyStore` over a memory store whose calls fail or wait as a test says. Not a MemorySessionStore, so calls are timed out. */
class FaultyStore implements IdempotencyStore {
  readonly inner = new MemorySessionStore()
  fail: Partial<Record<'begin' | 'complete' | 'abandon', Error>> = {}
  hold: Promise<void> | undefined
  abandoned = 0

  async beginIdempotent (request: IdempotencyBeginRequest): Promise<IdempotencyBeginResult> {
    if (this.fail.begin !== undefined) throw this.fail.begin
    await this.hold
    return await this.inner.beginIdempotent(request)
  }

  async completeIdempotent (key: string, attempt: string, reply: string, ttlMs: number): Promise<boolean> {
    if (this.fail.complete !== undefined) throw this.fail.complete
    return await this.inner.completeIdempotent(key, attempt, reply, ttlMs)
  }

  async abandonIdempotent (key: string, attempt: string): Promise<boolean> {
    if (this.fail.abandon !== undefined) throw this.fail.abandon
    const abandoned = await this.inner.abandonIdempotent(key, attempt)
    if (abandoned) this.abandoned++
    return abandoned
  }
}

t.test('store failures', async (t) => {
  t.test('begin fails: 503 by default, logged; with limits.onStoreError allow, minted without replays', async (t) => {
    const emulator = await startEmulator(t)
    const store = new FaultyStore()
    store.fail.begin = new Error('connection lost')
    const logs = logCapture()
    const denying = await buildApp(t, emulator, { idempotency: { store }, public: true }, { logger: { stream: logs.stream } })
    const refused = await post(denying, 'tap-1')
    t.equal(refused.statusCode, 503)
    t.match(refused.json(), { code: 'FST_OSHARA_UNAVAILABLE' })
    t.equal(refused.headers['retry-after'], '5')
    t.ok(logs.lines().some((line) => line.msg === 'oshara: idempotency store failed; refusing the session (onStoreError: deny)' && line.storeError === 'Error: connection lost'))
    const allowing = await buildApp(t, emulator, { idempotency: { store }, limits: { concurrency: 5, onStoreError: 'allow' }, public: true }, { logger: { stream: logs.stream } })
    t.equal((await post(allowing, 'tap-1')).statusCode, 200)
    t.equal((await post(allowing, 'tap-1')).headers['idempotent-replayed'], undefined)
    t.ok(logs.lines().some((line) => line.msg === 'oshara: idempotency store failed; serving without replays (onStoreError: allow)'))
    t.equal(sessionRequests(emulator).length, 2)
  })
  t.test('complete and abandon fail: the reply is served, the failure logged', async (t) => {
    const emulator = await startEmulator(t)
    const store = new FaultyStore()
    store.fail = { complete: new Error('readonly replica'), abandon: new Error('readonly replica') }
    const logs = logCapture()
    const app = await buildApp(t, emulator, { idempotency: { store }, public: true }, { logger: { stream: logs.stream } })
    t.equal((await post(app, 'tap-1')).statusCode, 200)
    t.ok(logs.lines().some((line) => String(line.msg).startsWith('oshara: idempotency store failed to keep a reply')))
    t.equal((await post(app, 'tap-1')).statusCode, 409, 'the in-flight mark stays until it expires')
    emulator.fault({ status: 500 })
    t.equal((await post(app, 'tap-2')).statusCode, 502)
    t.ok(logs.lines().some((line) => String(line.msg).startsWith('oshara: idempotency store failed to forget a failed request')))
  })
  t.test('a begin answered after storeTimeoutMs: 503, and the late claim is given back', async (t) => {
    const emulator = await startEmulator(t)
    const store = new FaultyStore()
    let release: () => void = () => {}
    store.hold = new Promise((resolve) => { release = resolve })
    const app = await buildApp(t, emulator, { idempotency: { store }, limits: { concurrency: 5, storeTimeoutMs: 20 }, public: true })
    t.equal((await post(app, 'tap-1')).statusCode, 503)
    release()
    await waitUntil(() => store.abandoned === 1, 'the late claim is abandoned')
    store.hold = undefined
    t.equal((await post(app, 'tap-1')).statusCode, 200, 'the key is free again')
  })
})

t.test('two instances sharing Redis replay each other\'s replies', async (t) => {
  const server = await redisServerFor(t)
  if (server === undefined) return
  const prefix = testPrefixes(t, server)()
  const emulator = await startEmulator(t)
  const instances = await Promise.all([0, 1].map(async () => await idempotentApp(t, emulator, {
    limits: { concurrency: 1, key: byUser, store: new RedisSessionStore({ client: await redisClient(t, server), prefix }) }
  })))
  const [a, b] = instances as [FastifyInstance, FastifyInstance]
  const first = await post(a, 'tap-1')
  const replayed = await post(b, 'tap-1')
  t.equal(replayed.body, first.body)
  t.equal(replayed.headers['idempotent-replayed'], 'true')
  t.equal((await post(b, 'tap-1', { body: { language: 'fr' } })).statusCode, 422)
  const parallel = await Promise.all(Array.from({ length: 20 }, (_, i) => post(instances[i % 2] as FastifyInstance, 'tap-2', { user: 'bob' })))
  const statuses = parallel.map((reply) => reply.statusCode)
  t.equal(statuses.filter((status) => status === 200).length + statuses.filter((status) => status === 409).length, 20, '200s and 409s only')
  t.equal(new Set(parallel.filter((reply) => reply.statusCode === 200).map((reply) => reply.json().session_id)).size, 1, 'one session for 20 parallel repeats')
  t.equal(sessionRequests(emulator).length, 2)
})
