import t from 'tap'
import { install } from '@sinonjs/fake-timers'
import Fastify, { type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import osharaVoice, { MemoryQuotaStore, RedisQuotaStore } from '../lib/index.js'
import { buildApp, logCapture, postToken, registerPublicError } from './helpers/app.js'
import { API_KEY, ORIGIN, startEmulator } from './helpers/emulator.js'
import { redisServerFor } from './helpers/redis-server.js'
import { UsageQuota, usdToMicros } from '../lib/quota/quota.js'
import { waitUntil } from './helpers/wait.js'

// Usage quotas per user: sessions, minutes and cost per day, month or fixed window.

const byUser = (request: { headers: Record<string, unknown> }): string => String(request.headers['x-user'])
const as = (user: string, extra: Record<string, string> = {}): Record<string, string> => ({ 'x-user': user, ...extra })

t.test('sessions: 3 per day: the 4th POST is 429 until the next UTC midnight; a failed mint does not count', async (t) => {
  const clock = install({ toFake: ['Date'], now: Date.parse('2026-11-25T23:00:00.000Z') })
  t.teardown(() => clock.uninstall())
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { quota: { key: byUser, window: 'day', sessions: 3 } })
  emulator.fault({ status: 500 })
  t.equal((await postToken(app, undefined, as('ann'))).statusCode, 502, 'a failed mint')
  for (let i = 0; i < 3; i++) t.equal((await postToken(app, undefined, as('ann'))).statusCode, 200)
  const refused = await postToken(app, undefined, as('ann'))
  t.equal(refused.statusCode, 429)
  t.equal(refused.headers['retry-after'], '3600', 'until 2026-11-26T00:00Z')
  t.same(refused.json(), {
    statusCode: 429, code: 'FST_OSHARA_QUOTA_EXCEEDED', error: 'Too Many Requests', message: 'You have used up your calls today. Try again later.'
  })
  t.equal((await postToken(app, undefined, as('bob'))).statusCode, 200, 'another user has their own budget')
  clock.tick(3600_000)
  t.equal((await postToken(app, undefined, as('ann'))).statusCode, 200, 'a new day')
})

t.test('successful replies say what is left (RateLimit-Policy, RateLimit); usage(key) for the app\'s UI', async (t) => {
  const clock = install({ toFake: ['Date'], now: Date.parse('2026-11-10T12:00:00.000Z') })
  t.teardown(() => clock.uninstall())
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { apiKey: API_KEY, quota: { key: byUser, window: 'month', sessions: 10, minutes: 300, costUsd: 5 } })
  const reply = await postToken(app, undefined, as('ann'))
  t.equal(reply.statusCode, 200)
  const month = 30 * 86_400
  const left = 20 * 86_400 + 12 * 3600
  t.equal(reply.headers['ratelimit-policy'], `"sessions";q=10;w=${month}, "minutes";q=300;w=${month}, "cost";q=5;w=${month}`)
  t.equal(reply.headers.ratelimit, `"sessions";r=9;t=${left}, "minutes";r=300;t=${left}, "cost";r=5;t=${left}`)
  t.same(await app.oshara.usage('ann'), { sessions: 1, minutes: 0, costUsd: 0, resetsAt: '2026-12-01T00:00:00.000Z' })
  t.same(await app.oshara.usage('nobody'), { sessions: 0, minutes: 0, costUsd: 0, resetsAt: '2026-12-01T00:00:00.000Z' })
})

t.test('minutes: 2: two ended sessions of 70 s each, and the next POST is 429', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    quota: { key: byUser, window: 'day', minutes: 2, costUsd: 1 },
    tracking: { firstCheckMs: 5, maxCheckIntervalMs: 20 }
  })
  for (const seconds of [70, 70]) {
    const before = (await app.oshara.usage('ann')).minutes
    const { session_id: sessionId } = (await postToken(app, undefined, as('ann'))).json()
    emulator.endSession(sessionId, { durationSeconds: seconds, costUsd: '0.0583' })
    await waitUntil(async () => (await app.oshara.usage('ann')).minutes > before, 'the ended session is counted')
  }
  t.match(await app.oshara.usage('ann'), { sessions: 2, minutes: 140 / 60, costUsd: 0.1166 })
  const refused = await postToken(app, undefined, as('ann'))
  t.equal(refused.statusCode, 429)
  t.match(refused.json(), { code: 'FST_OSHARA_QUOTA_EXCEEDED', message: 'You have used up your voice minutes today. Try again later.' })
})

t.test('a quota key of its own (per organisation) beside per-user limits: minutes and cost count against the quota key', async (t) => {
  const emulator = await startEmulator(t)
  const byOrg = (request: { headers: Record<string, unknown> }): string => String(request.headers['x-org'])
  const ended: unknown[] = []
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    limits: { concurrency: 1, key: byUser },
    quota: { key: byOrg, window: 'day', minutes: 2, costUsd: 1 },
    tracking: { firstCheckMs: 5, maxCheckIntervalMs: 20 },
    onSessionEnd: (_summary, context) => { ended.push(context) }
  })
  const ann = (await postToken(app, undefined, as('ann', { 'x-org': 'acme' }))).json()
  const bob = (await postToken(app, undefined, as('bob', { 'x-org': 'acme' }))).json()
  t.equal((await postToken(app, undefined, as('ann', { 'x-org': 'acme' }))).statusCode, 429, 'per-user concurrency still holds')
  emulator.endSession(ann.session_id, { durationSeconds: 60, costUsd: '0.0100' })
  emulator.endSession(bob.session_id, { durationSeconds: 30, costUsd: '0.0050' })
  await waitUntil(async () => (await app.oshara.usage('acme')).minutes === 1.5, 'both sessions counted for the organisation')
  t.match(await app.oshara.usage('acme'), { sessions: 2, minutes: 1.5, costUsd: 0.015 })
  t.match(await app.oshara.usage('ann'), { sessions: 0, minutes: 0 }, 'nothing counted against the limiter key')
  await waitUntil(() => ended.length === 2, 'onSessionEnd for both')
  t.same(ended.map((context) => (context as { key: string, quotaKey: string }).key).sort(), ['ann', 'bob'])
  t.ok(ended.every((context) => (context as { quotaKey: string }).quotaKey === 'acme'), 'onSessionEnd is told the quota key too')
})

t.test('the same key function passed to limits.key and quota.key registers and counts against that key', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    limits: { concurrency: 1, key: byUser },
    quota: { key: byUser, window: 'day', minutes: 10 },
    tracking: { firstCheckMs: 5, maxCheckIntervalMs: 20 }
  })
  const { session_id: sessionId } = (await postToken(app, undefined, as('ann'))).json()
  emulator.endSession(sessionId, { durationSeconds: 120 })
  await waitUntil(async () => (await app.oshara.usage('ann')).minutes === 2, 'counted for ann')
})

t.test('the decorator counts a session\'s minutes against the quotaKey it is given', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { apiKey: API_KEY, quota: { window: 'day', minutes: 10 }, tracking: { firstCheckMs: 5, maxCheckIntervalMs: 20 } })
  const session = await app.oshara.createSession({}, { quotaKey: 'acme' })
  emulator.endSession(session.session_id, { durationSeconds: 60 })
  await waitUntil(async () => (await app.oshara.usage('acme')).minutes === 1, 'counted for acme')
})

t.test('a per-request budget (free vs pro) gives each user their own', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    quota: { key: byUser, window: 'day', sessions: async (request) => request.headers['x-plan'] === 'pro' ? 3 : 1 }
  })
  t.equal((await postToken(app, undefined, as('free-user'))).statusCode, 200)
  t.equal((await postToken(app, undefined, as('free-user'))).statusCode, 429)
  for (let i = 0; i < 3; i++) t.equal((await postToken(app, undefined, as('pro-user', { 'x-plan': 'pro' }))).statusCode, 200)
  t.equal((await postToken(app, undefined, as('pro-user', { 'x-plan': 'pro' }))).statusCode, 429)
})

t.test('budgets can be functions of the request, read per request in their own units, beside fixed ones', async (t) => {
  const emulator = await startEmulator(t)
  const pro = (request: FastifyRequest): boolean => request.headers['x-plan'] === 'pro'
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    quota: { key: byUser, window: 'day', sessions: (request) => pro(request) ? 4 : 1, minutes: async (request) => pro(request) ? 90 : 10, costUsd: 2.5 }
  })
  const free = await postToken(app, undefined, as('ann'))
  t.match(free.headers['ratelimit-policy'], /^"sessions";q=1;w=86400, "minutes";q=10;w=86400, "cost";q=2.5;w=86400$/)
  const paid = await postToken(app, undefined, as('bob', { 'x-plan': 'pro' }))
  t.match(paid.headers['ratelimit-policy'], /^"sessions";q=4;w=86400, "minutes";q=90;w=86400, "cost";q=2.5;w=86400$/)
  t.match(paid.headers.ratelimit, /^"sessions";r=3;t=\d+, "minutes";r=90;t=\d+, "cost";r=2.5;t=\d+$/)
})

t.test('a short numeric window resets', async (t) => {
  const clock = install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { quota: { key: byUser, window: 60_000, sessions: 1 } })
  t.equal((await postToken(app, undefined, as('ann'))).statusCode, 200)
  const refused = await postToken(app, undefined, as('ann'))
  t.equal(refused.statusCode, 429)
  t.match(refused.json().message, /for now/)
  clock.tick(Number(refused.headers['retry-after']) * 1000)
  t.equal((await postToken(app, undefined, as('ann'))).statusCode, 200, 'the next window')
})

t.test('a numeric window longer than a Node.js timer can wait (30 days) is accepted and resets: no timer waits for a window', async (t) => {
  const clock = install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const emulator = await startEmulator(t)
  const window = 30 * 24 * 3_600_000
  t.ok(window > 2_147_483_647)
  const app = await buildApp(t, emulator, { quota: { key: byUser, window, sessions: 1 } })
  t.equal((await postToken(app, undefined, as('ann'))).statusCode, 200)
  const refused = await postToken(app, undefined, as('ann'))
  t.equal(refused.statusCode, 429)
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(retryAfter > 0 && retryAfter <= window / 1000, `Retry-After ${retryAfter} within the window`)
  clock.tick(retryAfter * 1000)
  t.equal((await postToken(app, undefined, as('ann'))).statusCode, 200, 'the next window')
})

t.test('the quota is checked before a concurrency slot is taken, and defaults to the limiter key', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { limits: { concurrency: 1, key: byUser }, quota: { window: 'day', sessions: 1 } })
  const { session_id: sessionId } = (await postToken(app, undefined, as('ann'))).json()
  t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId as string}`, headers: as('ann') })).statusCode, 204)
  const refused = await postToken(app, undefined, as('ann'))
  t.equal(refused.json().code, 'FST_OSHARA_QUOTA_EXCEEDED', 'the quota, counted per limits.key')
  t.equal((await postToken(app, undefined, as('bob'))).statusCode, 200, 'and the refused request held no slot')
})

t.test('quota store failure: deny answers 503, allow serves and warns; a bug in a budget function is a safe 500', async (t) => {
  const emulator = await startEmulator(t)
  const broken = new MemoryQuotaStore()
  broken.consume = async () => { throw new Error('quota store down') }
  const capture = logCapture()
  const deny = await buildApp(t, emulator, { quota: { key: byUser, window: 'day', sessions: 1, store: broken } })
  t.equal((await postToken(deny, undefined, as('ann'))).statusCode, 503)
  const allow = await buildApp(t, emulator, { quota: { key: byUser, window: 'day', sessions: 1, store: broken, onStoreError: 'allow' } }, { logger: { stream: capture.stream } })
  const served = await postToken(allow, undefined, as('ann'))
  t.equal(served.statusCode, 200)
  t.equal(served.headers.ratelimit, undefined, 'no quota headers without a count')
  t.ok(capture.lines().some((line) => line.level === 40 && /serving without a quota/.test(String(line.msg))))
  const buggy = await buildApp(t, emulator, { quota: { key: byUser, window: 'day', minutes: () => { throw new TypeError('plan is undefined') } }, apiKey: API_KEY })
  const failed = await postToken(buggy, undefined, as('ann'))
  t.equal(failed.statusCode, 500)
  t.equal(failed.json().code, 'FST_OSHARA_CALLBACK_FAILED')
})

t.test('quota options are checked at register', async (t) => {
  t.match(await registerPublicError({ quota: { window: 'day' } }), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /"quota" has no budget/ })
  t.match(await registerPublicError({ quota: { window: 'week' as 'day', sessions: 1 } }), { message: /"quota\.window" must be 'day', 'month' or a number of milliseconds/ })
  t.match(await registerPublicError({ quota: { window: 'day', sessions: -1 } }), { message: /"quota\.sessions" must be a number >= 0 or a function/ })
  t.match(await registerPublicError({ quota: { window: 'day', minutes: 10 } }), { message: /"quota\.minutes" needs apiKey.*budget sessions only/ })
  t.match(await registerPublicError({ quota: { window: 'day', costUsd: 1 } }), { message: /"quota\.costUsd" needs apiKey/ })
  t.match(await registerPublicError({ apiKey: API_KEY, tracking: false, quota: { window: 'day', minutes: 10 } }), { message: /"quota\.minutes" counts when a session ends.*tracking: false/ })
  t.match(await registerPublicError({ quota: { window: 'day', sessions: 1, store: {} as MemoryQuotaStore } }), { message: /"quota\.store" must implement consume, refund, record, usage/ })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', public: true })
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', public: true, apiKey: API_KEY, quota: { window: 'month', costUsd: 20 }, decorator: 'costOnly', path: '/cost-only' })
  await app.ready()
  await t.rejects(app.oshara.usage('ann'), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /"quota" is not set/ })
  t.match(await (app as unknown as { costOnly: typeof app.oshara }).costOnly.usage('ann'), { costUsd: 0 }, 'a cost budget alone registers, with tracking')
})

t.test('two instances sharing one Redis never exceed sessions under 100 parallel requests', async (t) => {
  const server = await redisServerFor(t)
  if (server === undefined) return
  const emulator = await startEmulator(t, { record: false })
  const instance = async () => {
    const client = new Redis(server.url)
    t.teardown(() => { client.disconnect() })
    // What is tested is the count, not the store's speed: a loaded machine must not turn refusals into 503s.
    return await buildApp(t, emulator, { quota: { key: byUser, window: 'day', sessions: 7, storeTimeoutMs: 60_000, store: new RedisQuotaStore({ client, prefix: 'quota-test:' }) } })
  }
  const apps = [await instance(), await instance()]
  const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => postToken(apps[i % 2] as (typeof apps)[number], undefined, as('ann'))))
  t.equal(replies.filter((reply) => reply.statusCode === 200).length, 7)
  t.equal(replies.filter((reply) => reply.statusCode === 429).length, 93)
  t.match(await apps[1]?.oshara.usage('ann'), { sessions: 7 })
})

t.test('usdToMicros reads Oshara\'s decimal strings and numbers; anything else is zero', async (t) => {
  t.equal(usdToMicros('0.0583'), 58_300)
  t.equal(usdToMicros(5), 5_000_000)
  t.equal(usdToMicros('12.3456789'), 12_345_679)
  for (const nothing of [undefined, null, 'free', Number.NaN, -1, '-0.5', 0]) t.equal(usdToMicros(nothing), 0, String(nothing))
})

/** A memory quota store whose methods fail while their name is in `failing`. */
class FailingQuotaStore extends MemoryQuotaStore {
  readonly failing = new Set<string>()

  override async refund (key: string, window: string): Promise<void> {
    if (this.failing.has('refund')) throw new Error('refund failed')
    await super.refund(key, window)
  }

  override async record (...args: Parameters<MemoryQuotaStore['record']>): Promise<void> {
    if (this.failing.has('record')) throw new Error('record failed')
    await super.record(...args)
  }

  override async usage (key: string, window: string): ReturnType<MemoryQuotaStore['usage']> {
    if (this.failing.has('usage')) throw new Error('usage failed')
    return await super.usage(key, window)
  }
}

t.test('a quota store failing after the check: a lost give-back or count is logged, usage() is a 503', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const store = new FailingQuotaStore()
  const app = await buildApp(t, emulator, { quota: { key: byUser, window: 'day', sessions: 5, store } }, { logger: { stream: capture.stream } })
  store.failing.add('refund')
  emulator.fault({ status: 500 })
  t.equal((await postToken(app, undefined, as('ann'))).statusCode, 502)
  t.match(capture.lines().find((line) => /failed to give back/.test(String(line.msg))), { level: 40, storeError: /refund failed/ })
  store.failing.add('usage')
  await t.rejects(app.oshara.usage('ann'), { code: 'FST_OSHARA_UNAVAILABLE' })

  const quota = new UsageQuota({ store, window: 'day', sessions: 5, minutes: undefined, costUsd: undefined, onStoreError: 'deny', storeTimeoutMs: 1000 })
  store.failing.add('record')
  await quota.record('ann', { session_id: 'sess_1', session_duration_seconds: 30 }, app.log)
  t.match(capture.lines().find((line) => /failed to count an ended session/.test(String(line.msg))), { level: 50, session_id: 'sess_1', seconds: 30, costMicros: 0 })
  store.failing.clear()
  await quota.record('ann', { session_id: 'sess_2', created_at: 'not a time', session_duration_seconds: 'sixty' as unknown as number }, app.log)
  t.match(await quota.usage('ann'), { minutes: 0 }, 'a summary without a start time counts now; an unreadable duration counts nothing')
})

t.test('a budget function that answers no number is a bug: a safe 500', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { quota: { key: byUser, window: 'day', sessions: () => Number.NaN } })
  const failed = await postToken(app, undefined, as('ann'))
  t.equal(failed.statusCode, 500)
  t.equal(failed.json().code, 'FST_OSHARA_CALLBACK_FAILED')
})
