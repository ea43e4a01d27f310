import t from 'tap'
import diagnostics from 'node:diagnostics_channel'
import { install } from '@sinonjs/fake-timers'
import Fastify from 'fastify'
import osharaVoice, { MemorySessionStore, type OsharaSessionSummary, type SessionEndContext } from '../lib/index.js'
import { buildApp, logCapture, postToken, registerPublicError } from './helpers/app.js'
import { API_KEY, ORIGIN, startEmulator } from './helpers/emulator.js'
import { waitUntil } from './helpers/wait.js'

// Session tracking: the plugin learns from Oshara when each call ends, frees its slot, and hands the app its summary.

const limits = { concurrency: 1, key: () => 'user-1' }

t.test('a crashed tab (no DELETE), concurrency 1: the next POST is 200 as soon as Oshara finalizes the call, even with a large firstCheckMs', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { apiKey: API_KEY, limits, tracking: { firstCheckMs: 3_600_000 } })
  const first = (await postToken(app)).json()
  const refused = await postToken(app)
  t.equal(refused.statusCode, 429, 'the call still runs: its slot is held')
  t.equal(refused.headers['retry-after'], '120', 'come back within maxCheckIntervalMs, not when the 4 h hold ends')
  emulator.endSession(first.session_id, { reason: 'tab_crashed' })
  t.equal((await postToken(app)).statusCode, 200, 'the key at its limit had its sessions looked up before a 429')
})

t.test('a key at its limit mints when its finalized session was delivered and untracked during the lookup (a tick won the race)', async (t) => {
  // The tick that delivers onSessionEnd untracks the session between the key's lookup and its markEnded.
  class TickWinsTheRace extends MemorySessionStore {
    override async markEnded (sessionId: string): Promise<boolean> {
      await this.untrack(sessionId)
      return await super.markEnded(sessionId)
    }
  }
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { apiKey: API_KEY, limits: { ...limits, store: new TickWinsTheRace() }, tracking: { firstCheckMs: 3_600_000 } })
  const first = (await postToken(app)).json()
  emulator.endSession(first.session_id, { reason: 'tab_crashed' })
  t.equal((await postToken(app)).statusCode, 200, 'the slot is free: no 429')
})

t.test('a key still at its limit after a reclaim gets the capped Retry-After (maxCheckIntervalMs), published once on oshara:limit', async (t) => {
  // Another request takes the slot the reclaim freed before this one tries again: its reservation
  // frees in a minute, but the refusal must say to look again within maxCheckIntervalMs (5 s).
  class AnotherRequestTakesTheFreedSlot extends MemorySessionStore {
    override async markEnded (sessionId: string): Promise<boolean> {
      const ended = await super.markEnded(sessionId)
      await this.acquire({ key: 'user-1', concurrency: 1, global: undefined, pendingMs: 60_000 })
      return ended
    }
  }
  const published: unknown[] = []
  const onLimit = (message: unknown): void => { published.push(message) }
  diagnostics.subscribe('oshara:limit', onLimit)
  t.teardown(() => { diagnostics.unsubscribe('oshara:limit', onLimit) })
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    limits: { ...limits, store: new AnotherRequestTakesTheFreedSlot() },
    tracking: { firstCheckMs: 3_600_000, maxCheckIntervalMs: 5_000 }
  }, { genReqId: () => 'req-at-limit' })
  const first = (await postToken(app)).json()
  emulator.endSession(first.session_id, { reason: 'tab_crashed' })
  const refused = await postToken(app)
  t.equal(refused.statusCode, 429)
  t.equal(refused.json().code, 'FST_OSHARA_SESSION_LIMIT')
  t.equal(refused.headers['retry-after'], '5', 'within maxCheckIntervalMs, not when the other reservation lapses (60 s)')
  t.same(published, [{ scope: 'key', retryAfterMs: 5_000, requestId: 'req-at-limit' }], 'one message, capped')
})

t.test('a call that outlives its token keeps its slot until it is finalized', async (t) => {
  // The memory store's clock: the token's lifetime passes for the limiter, not for the emulator's call.
  const clock = install({ toFake: ['performance'] })
  t.teardown(() => clock.uninstall())
  const emulator = await startEmulator(t, { tokenTtlSeconds: 60 })
  const tracked = await buildApp(t, emulator, { apiKey: API_KEY, limits, tracking: { firstCheckMs: 3_600_000 } })
  const untracked = await buildApp(t, emulator, { apiKey: API_KEY, limits, tracking: false })
  const session = (await postToken(tracked)).json()
  await postToken(untracked)
  clock.tick(61_000)
  t.equal((await postToken(untracked)).statusCode, 200, 'without tracking the slot frees when the token expires')
  t.equal((await postToken(tracked)).statusCode, 429, 'with tracking the running call keeps it')
  emulator.endSession(session.session_id)
  t.equal((await postToken(tracked)).statusCode, 200)
})

t.test('onSessionEnd: once per ended session, after its slot is freed, with duration, cost and transcript', async (t) => {
  const emulator = await startEmulator(t)
  const ended: Array<[OsharaSessionSummary, SessionEndContext, number]> = []
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    limits,
    tracking: { firstCheckMs: 10, maxCheckIntervalMs: 20 },
    onSessionEnd: async (summary, context) => { ended.push([summary, context, (await postToken(app)).statusCode]) }
  })
  const { session_id: sessionId } = (await postToken(app)).json()
  emulator.endSession(sessionId, { durationSeconds: 70, costUsd: '0.0583', transcript: [{ role: 'user', text: 'Hi' }, { role: 'assistant', text: 'Hello!' }] })
  await waitUntil(() => ended.length === 1, 'onSessionEnd is called')
  const [summary, context, statusDuringCallback] = ended[0] as [OsharaSessionSummary, SessionEndContext, number]
  t.same(context, { sessionId, key: 'user-1' })
  t.match(summary, { session_id: sessionId, session_duration_seconds: 70, estimated_cost_usd: '0.0583', transcript: [{ text: 'Hi' }, { text: 'Hello!' }] })
  t.type(summary.finalized_at, 'string')
  t.equal(statusDuringCallback, 200, 'the slot was free before onSessionEnd ran')
  const next = ended.length
  await waitUntil(() => emulator.requests.filter((request) => request.url.startsWith('/api/billing/sessions/')).length >= 4, 'the second session is looked up')
  t.equal(ended.length, next, 'delivered once')
})

t.test('decorator sessions without a key are tracked too', async (t) => {
  const emulator = await startEmulator(t)
  const ended: SessionEndContext[] = []
  const app = await buildApp(t, emulator, { apiKey: API_KEY, tracking: { firstCheckMs: 10 }, onSessionEnd: (_summary, context) => { ended.push(context) } })
  const session = await app.oshara.createSession({ metadata: { user_id: 'u9' } })
  emulator.endSession(session.session_id)
  await waitUntil(() => ended.length === 1, 'onSessionEnd is called')
  t.same(ended, [{ sessionId: session.session_id, key: undefined }])
})

t.test('an onSessionEnd that throws is logged and delivered again, a bounded number of times', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  let calls = 0
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    limits,
    tracking: { firstCheckMs: 5, maxCheckIntervalMs: 10 },
    onSessionEnd: () => { calls++; throw new Error('analytics down') }
  }, { logger: { stream: capture.stream } })
  const { session_id: sessionId } = (await postToken(app)).json()
  emulator.endSession(sessionId)
  await waitUntil(() => capture.lines().some((line) => line.msg === 'oshara: onSessionEnd threw; giving up on this session'), 'the delivery is given up')
  t.equal(calls, 5)
  t.equal(capture.lines().filter((line) => line.msg === 'oshara: onSessionEnd threw; delivering it again later').length, 4)
  t.match(capture.lines().find((line) => /giving up/.test(String(line.msg))), { level: 50, session_id: sessionId, err: { message: 'analytics down' } })
})

t.test('billing failing (500s, timeouts, 401): no slot freed by mistake, minting still works, lookups back off, a 401 says what to fix', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    timeoutMs: 200,
    limits: { concurrency: 1, key: (request) => String(request.headers['x-user']) },
    tracking: { firstCheckMs: 5, maxCheckIntervalMs: 40 }
  }, { logger: { stream: capture.stream } })
  emulator.fault({ target: 'billing', status: 500 }, 6)
  emulator.fault({ target: 'billing', delayMs: 1000 }, 1)
  emulator.fault({ target: 'billing', status: 401, body: { detail: 'Invalid API key.' } }, 100)
  const { session_id: sessionId } = (await postToken(app, undefined, { 'x-user': 'ann' })).json()
  emulator.endSession(sessionId)
  const delays = (): number[] => capture.lines().filter((line) => typeof line.retryInMs === 'number').map((line) => line.retryInMs as number)
  await waitUntil(() => delays().length >= 4, 'four lookups failed')
  t.equal((await postToken(app, undefined, { 'x-user': 'ann' })).statusCode, 429, 'the ended session cannot be confirmed: its slot stays held')
  t.equal((await postToken(app, undefined, { 'x-user': 'bob' })).statusCode, 200, 'minting still works')
  const refused = capture.lines().find((line) => /session lookup refused/.test(String(line.msg)))
  t.match(refused, { code: 'FST_OSHARA_UNAUTHORIZED', fix: /apiKey/, msg: /Set the apiKey option/ })
  const failed = capture.lines().filter((line) => line.msg === 'oshara: session lookup failed; its slot stays held, looked up again later')
  t.ok(failed.length >= 2)
  t.same(delays().slice(0, 4), [10, 20, 40, 40], 'lookups back off, doubling up to maxCheckIntervalMs')
})

t.test('a session never finalized is dropped after maxTrackMs with a warning, and its slot freed', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const app = await buildApp(t, emulator, { apiKey: API_KEY, limits, tracking: { firstCheckMs: 5, maxCheckIntervalMs: 10, maxTrackMs: 50 } }, { logger: { stream: capture.stream } })
  await postToken(app)
  await waitUntil(() => capture.lines().some((line) => /not finalized within tracking.maxTrackMs/.test(String(line.msg))), 'the session is dropped')
  t.equal((await postToken(app)).statusCode, 200)
})

t.test('tracking is on by default with apiKey and limits or onSessionEnd, and needs apiKey', async (t) => {
  t.match(await registerPublicError({ onSessionEnd: () => {} }), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /"onSessionEnd" needs apiKey.*Fix: set apiKey/ })
  t.match(await registerPublicError({ tracking: {} }), { message: /"tracking" needs apiKey/ })
  t.match(await registerPublicError({ apiKey: API_KEY, tracking: false, onSessionEnd: () => {} }), { message: /"onSessionEnd" needs session tracking/ })
  t.match(await registerPublicError({ apiKey: API_KEY, tracking: { firstCheckMs: 0 } }), { message: /"tracking\.firstCheckMs" must be an integer between 1 and 2147483647 ms/ })
  const limitsOnly = { acquire: async () => ({ ok: true as const, slotId: '1' }), bind: async () => true, release: async () => {}, releaseSession: async () => true }
  t.match(await registerPublicError({ apiKey: API_KEY, limits: { concurrency: 1, store: limitsOnly } }),
    { message: /"limits\.store" does not implement track, claimDue, reschedule, untrack, markEnded, sessionsOf.*tracking: false/ })
  t.match(await registerPublicError({ apiKey: API_KEY, tracking: { store: limitsOnly } }), { message: /"tracking\.store" does not implement/ })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', public: true, apiKey: API_KEY, tracking: false, limits: { concurrency: 1, store: limitsOnly } })
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', public: true, limits: { concurrency: 1, store: limitsOnly }, decorator: 'second', path: '/second' })
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', public: true, apiKey: API_KEY, tracking: { store: new MemorySessionStore() }, decorator: 'third', path: '/third' })
  await app.ready()
  t.pass('a store without tracking methods is fine when tracking is off or has no apiKey')
})

/** A memory store whose tracking methods fail while their name is in `failing`. */
class FlakyStore extends MemorySessionStore {
  readonly failing = new Set<string>()

  #check (method: string): void {
    if (this.failing.has(method)) throw new Error(`${method} failed`)
  }

  override async track (...args: Parameters<MemorySessionStore['track']>): ReturnType<MemorySessionStore['track']> {
    this.#check('track')
    return await super.track(...args)
  }

  override async claimDue (...args: Parameters<MemorySessionStore['claimDue']>): ReturnType<MemorySessionStore['claimDue']> {
    this.#check('claimDue')
    return await super.claimDue(...args)
  }

  override async sessionsOf (...args: Parameters<MemorySessionStore['sessionsOf']>): ReturnType<MemorySessionStore['sessionsOf']> {
    this.#check('sessionsOf')
    return await super.sessionsOf(...args)
  }

  override async reschedule (...args: Parameters<MemorySessionStore['reschedule']>): ReturnType<MemorySessionStore['reschedule']> {
    this.#check('reschedule')
    // As if another instance had taken the session over.
    if (this.failing.has('owner')) return false
    return await super.reschedule(...args)
  }
}

t.test('a failing tracking store is logged and tried again, never thrown at a request', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const store = new FlakyStore()
  const ended: string[] = []
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    limits: { concurrency: 1, key: () => 'user-1', store },
    // A claim whose check failed in the store is taken again when its lease ends.
    tracking: { firstCheckMs: 5, maxCheckIntervalMs: 20, leaseMs: 50 },
    onSessionEnd: (summary) => { ended.push(summary.session_id) }
  }, { logger: { stream: capture.stream } })
  const logged = (pattern: RegExp) => () => capture.lines().some((line) => pattern.test(String(line.msg)))

  store.failing.add('track')
  const untracked = await app.oshara.createSession({})
  t.ok(untracked.session_id, 'the decorator still mints')
  t.ok(logged(/failed to track a session/)(), 'the failure is logged')

  store.failing.add('claimDue')
  const { session_id: sessionId } = (await postToken(app)).json()
  await waitUntil(logged(/failed to hand out tracked sessions/), 'a failed claim is logged')
  store.failing.add('sessionsOf')
  emulator.endSession(sessionId)
  t.equal((await postToken(app)).statusCode, 429, 'a key at its limit whose sessions cannot be listed gets the 429')
  t.ok(logged(/could not look up the sessions of a key at its limit/)())

  store.failing.add('reschedule')
  store.failing.delete('claimDue')
  await waitUntil(logged(/failed while tracking a session/), 'a failed reschedule is logged')
  store.failing.delete('reschedule')
  store.failing.add('owner')
  const claims = capture.lines().length
  await waitUntil(() => emulator.requests.filter((request) => request.url.includes(sessionId)).length >= 3, 'looked up again after the lease')
  t.same(ended, [], 'a session taken over by another instance is not delivered here')
  t.equal(capture.lines().length, claims, 'and nothing is logged for it')
  store.failing.clear()
  await waitUntil(() => ended.includes(sessionId), 'the session is delivered once the store is back')
  t.equal((await postToken(app)).statusCode, 200)
})

t.test('tracking.concurrency bounds the lookups and deliveries in flight', async (t) => {
  const emulator = await startEmulator(t)
  let release!: () => void
  const blocked = new Promise<void>((resolve) => { release = resolve })
  const ended: string[] = []
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    tracking: { firstCheckMs: 5, maxCheckIntervalMs: 10, concurrency: 1 },
    onSessionEnd: async (summary) => {
      ended.push(summary.session_id)
      if (ended.length === 1) await blocked
    }
  })
  const first = await app.oshara.createSession({})
  emulator.endSession(first.session_id)
  await waitUntil(() => ended.length === 1, 'the first delivery starts')
  const second = await app.oshara.createSession({})
  emulator.endSession(second.session_id)
  const lookups = (): number => emulator.requests.filter((request) => request.url.includes(second.session_id) && request.method === 'GET').length
  await waitUntil(() => emulator.requests.filter((request) => request.method === 'GET').length >= 1, 'lookups ran')
  t.equal(lookups(), 0, 'no second lookup while the one slot is busy')
  release()
  await waitUntil(() => ended.length === 2, 'the second is delivered once the first is done')
  t.same(ended, [first.session_id, second.session_id])
})

t.test('with tracking, a global refusal is capped too, and a store failure is still a 503', async (t) => {
  const emulator = await startEmulator(t)
  const store = new FlakyStore()
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    limits: { concurrency: 1, global: 1, key: (request) => String(request.headers['x-user']), store, storeTimeoutMs: 50 },
    tracking: { firstCheckMs: 3_600_000, maxCheckIntervalMs: 30_000 }
  })
  t.equal((await postToken(app, undefined, { 'x-user': 'ann' })).statusCode, 200)
  const global = await postToken(app, undefined, { 'x-user': 'bob' })
  t.equal(global.statusCode, 429)
  t.equal(global.headers['retry-after'], '30')
  store.acquire = async () => { throw new Error('store down') }
  t.equal((await postToken(app, undefined, { 'x-user': 'cy' })).statusCode, 503)
})
