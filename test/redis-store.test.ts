import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { RedisSessionStore } from '../lib/limits/redis-store.js'
import { OsharaInvalidOptionsError } from '../lib/errors.js'
import { sessionStoreContract } from '../lib/testing.js'
import type { AcquireResult, ClaimResult, SlotRequest, TrackedSession } from '../lib/limits/store.js'
import { waitUntil } from './helpers/wait.js'
import { definedCommands, redisClient, redisServerFor, testPrefixes, type RedisServer } from './helpers/redis-server.js'

const LONG_MS = 60_000

const server = await redisServerFor(t)
if (server !== undefined) defineTests(server, testPrefixes(t, server))

function request (key: string, options: Partial<SlotRequest> = {}): SlotRequest {
  return { key, concurrency: 3, pendingMs: LONG_MS, ...options }
}

function granted (results: AcquireResult[]): number {
  return results.filter((result) => result.ok).length
}

async function slotOf (store: RedisSessionStore, slotRequest: SlotRequest): Promise<string> {
  const result = await store.acquire(slotRequest)
  if (!result.ok) throw new Error(`expected a slot, got ${JSON.stringify(result)}`)
  return result.slotId
}

function defineTests (server: RedisServer, testPrefix: () => string): void {
  /** A store with a prefix of its own, so tests never see each other's slots. */
  async function storeFor (t: Test, redis?: Redis): Promise<{ store: RedisSessionStore, redis: Redis, prefix: string }> {
    redis ??= await redisClient(t, server)
    const prefix = testPrefix()
    return { store: new RedisSessionStore({ client: redis, prefix }), redis, prefix }
  }

  async function keysOf (redis: Redis, prefix: string): Promise<string[]> {
    return (await redis.keys(`{${prefix}}*`)).sort()
  }

  // The contract, tracking cases included, on one client like an app instance's; each case has a store
  // with a prefix of its own. Redis keeps the time, so the expiry and due-time cases wait for it in
  // real time, polling with a deadline.
  const contractClient = new Redis(server.url, { maxRetriesPerRequest: 1 })
  contractClient.on('error', () => {}) // the restart test below stops Redis for a while
  t.teardown(() => contractClient.disconnect())
  for (const { name, run } of sessionStoreContract({
    createStore: () => new RedisSessionStore({ client: contractClient, prefix: testPrefix() }),
    tracking: true
  })) {
    t.test(name, run)
  }

  t.test('two app instances share the global cap: 100 parallel acquires, global 5, exactly 5 slots', async (t) => {
    const prefix = testPrefix()
    const instances = [
      new RedisSessionStore({ client: await redisClient(t, server), prefix }),
      new RedisSessionStore({ client: await redisClient(t, server), prefix })
    ]
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      (instances[i % 2] as RedisSessionStore).acquire(request(`ip-${i % 25}`, { global: 5 }))))
    t.equal(granted(results), 5)
    t.ok(results.every((result) => result.ok || result.scope === 'global'))
  })

  t.test('retryAfterMs is whole milliseconds', async (t) => {
    const { store } = await storeFor(t)
    await slotOf(store, request('ip-1', { concurrency: 1, pendingMs: 10_000 }))
    const byKey = await store.acquire(request('ip-1', { concurrency: 1 }))
    const byGlobal = await store.acquire(request('ip-2', { global: 1 }))
    t.match(byKey, { ok: false, scope: 'key' })
    t.match(byGlobal, { ok: false, scope: 'global' })
    const waits = [byKey, byGlobal].map((result) => result.ok ? NaN : result.retryAfterMs)
    t.ok(waits.every((wait) => Number.isInteger(wait) && wait > 9_000 && wait <= 10_000), `whole milliseconds: ${waits.join(', ')}`)
  })

  t.test('a session id bound twice belongs to the later slot', async (t) => {
    const { store } = await storeFor(t)
    const a = await slotOf(store, request('ip-1'))
    const b = await slotOf(store, request('ip-1'))
    await store.bind(a, 'sess-3', LONG_MS)
    await store.bind(b, 'sess-3', LONG_MS)
    await store.release(a)
    t.equal(await store.releaseSession('sess-3'), true, 'releasing the first slot left the second one reachable')
  })

  t.test('release, of a pending slot or of a bound one, leaves no key behind', async (t) => {
    const { store, redis, prefix } = await storeFor(t)
    const pending = await slotOf(store, request('ip-1', { concurrency: 1 }))
    await store.release(pending)
    const bound = await slotOf(store, request('ip-1', { concurrency: 1 }))
    await store.bind(bound, 'sess-1', LONG_MS)
    await store.release(bound)
    await store.release(bound)
    t.same(await keysOf(redis, prefix), [], 'no key is left behind')
  })

  t.test('every key expires: PTTL is set and no later than the slot it serves', async (t) => {
    const { store, redis, prefix } = await storeFor(t)
    await slotOf(store, request('ip-1', { pendingMs: 5_000 }))
    await store.bind(await slotOf(store, request('ip-2', { pendingMs: 5_000 })), 'sess-1', 20_000)
    const keys = await keysOf(redis, prefix)
    t.same(keys.map((key) => key.replace(/slot:.*/, 'slot:*')), [
      `{${prefix}}global`, `{${prefix}}key:ip-1`, `{${prefix}}key:ip-2`,
      `{${prefix}}session:sess-1`, `{${prefix}}slot:*`, `{${prefix}}slot:*`
    ])
    const ttls = Object.fromEntries(await Promise.all(keys.map(async (key) => [key, await redis.pttl(key)] as const)))
    for (const [key, ttl] of Object.entries(ttls)) t.ok(ttl > 0 && ttl <= 20_000, `${key}: PTTL ${ttl}`)
    t.ok((ttls[`{${prefix}}key:ip-1`] as number) <= 5_000, 'a key expires with its own last slot')
    t.ok((ttls[`{${prefix}}global`] as number) > 15_000, 'the global set expires with the last slot of all')
  })

  t.test('memory stays bounded: no key is left after many cycles', async (t) => {
    const { store, redis, prefix } = await storeFor(t)
    const cycle = async (round: number): Promise<boolean> => {
      const key = `ip-${round % 20}`
      const slotId = await slotOf(store, request(key, { concurrency: 300 }))
      if (round % 3 === 0) {
        await store.release(slotId)
        return true
      }
      await store.bind(slotId, `sess-${round}`, LONG_MS)
      return await store.releaseSession(`sess-${round}`, key)
    }
    const freed = await Promise.all(Array.from({ length: 300 }, (_, round) => cycle(round)))
    t.ok(freed.every(Boolean))
    t.same(await keysOf(redis, prefix), [])

    await slotOf(store, request('ip-short', { pendingMs: 30 }))
    await waitUntil(async () => (await keysOf(redis, prefix)).length === 0, 'every key has expired', 10_000)
    t.same(await keysOf(redis, prefix), [], 'expired slots leave nothing either')
  })

  t.test('stores with different prefixes do not see each other', async (t) => {
    const redis = await redisClient(t, server)
    const { store: one } = await storeFor(t, redis)
    const { store: two } = await storeFor(t, redis)
    const slotId = await slotOf(one, request('ip-1', { concurrency: 1, global: 1 }))
    t.equal((await two.acquire(request('ip-1', { concurrency: 1, global: 1 }))).ok, true)
    t.equal(await two.bind(slotId, 'sess-1', LONG_MS), false)
    t.equal(await one.bind(slotId, 'sess-1', LONG_MS), true)
    t.equal(await two.releaseSession('sess-1'), false)
    t.equal(await one.releaseSession('sess-1'), true)
  })

  t.test('the scripts are defined once per client', async (t) => {
    const redis = await redisClient(t, server)
    const defined = definedCommands(redis)
    await storeFor(t, redis)
    const acquire = (redis as unknown as Record<string, unknown>).osharaVoiceV2Acquire
    await storeFor(t, redis)
    t.same(defined, [
      'osharaVoiceV2Acquire', 'osharaVoiceV2Bind', 'osharaVoiceV2Release', 'osharaVoiceV2ReleaseSession',
      'osharaVoiceV2Track', 'osharaVoiceV2ClaimDue', 'osharaVoiceV2Reschedule', 'osharaVoiceV2Untrack',
      'osharaVoiceV2MarkEnded', 'osharaVoiceV3SessionsOf', 'osharaVoiceV2SessionState', 'osharaVoiceV1IdemBegin', 'osharaVoiceV1IdemComplete', 'osharaVoiceV1IdemAbandon'
    ])
    t.equal((redis as unknown as Record<string, unknown>).osharaVoiceV2Acquire, acquire)
  })

  t.test('key names follow the client keyPrefix', async (t) => {
    const redis = await redisClient(t, server, { keyPrefix: 'app:' })
    const { store, prefix } = await storeFor(t, redis)
    await store.bind(await slotOf(store, request('ip-1')), 'sess-1', LONG_MS)
    const plain = await redisClient(t, server)
    t.equal((await plain.keys(`app:{${prefix}}*`)).length, 4)
    t.equal(await store.releaseSession('sess-1', 'ip-1'), true)
    t.same(await plain.keys(`*{${prefix}}*`), [])
  })

  t.test('slots are timed by the Redis clock, not the app clock', async (t) => {
    const { store } = await storeFor(t)
    const realNow = Date.now
    Date.now = () => realNow() - 3_600_000
    t.teardown(() => { Date.now = realNow })
    // Were the app clock used, the slot would have expired an hour before it was taken.
    const slotId = await slotOf(store, request('ip-1', { pendingMs: LONG_MS }))
    Date.now = realNow
    t.equal(await store.bind(slotId, 'sess-1', LONG_MS), true)
  })

  t.test('tracking: bind with track binds and tracks in one round trip', async (t) => {
    const { store, redis, prefix } = await storeFor(t)
    // The first call of a script on a connection may be sent again as EVAL (NOSCRIPT): count the second.
    await store.bind(await slotOf(store, request('ip-0')), 'sess-0', LONG_MS, { firstCheckMs: LONG_MS })
    const slotId = await slotOf(store, request('ip-1'))
    const sent: string[] = []
    const sendCommand = redis.sendCommand.bind(redis)
    redis.sendCommand = (command, stream) => {
      sent.push(command.name)
      return sendCommand(command, stream)
    }
    t.equal(await store.bind(slotId, 'sess-1', LONG_MS, { firstCheckMs: 0 }), true)
    redis.sendCommand = sendCommand
    t.same(sent, ['evalsha'], 'one command: the bind script')
    t.same(await store.sessionsOf('ip-1'), ['sess-1'], 'tracked, bound to a slot of ip-1')
    const { sessions } = await store.claimDue({ owner: 'tracker-a', leaseMs: LONG_MS, limit: 10 })
    t.match(sessions, [{ sessionId: 'sess-1', key: 'ip-1', checks: 0, ended: false, deliveries: 0 }])
    t.ok(await redis.exists(`{${prefix}}track:sess-1`))
  })

  t.test('tracking: a failed bind tracks nothing; bind without track tracks nothing', async (t) => {
    const { store, redis, prefix } = await storeFor(t)
    t.equal(await store.bind('no-such-slot', 'sess-1', LONG_MS, { firstCheckMs: 0 }), false)
    t.equal(await store.bind(await slotOf(store, request('ip-1')), 'sess-2', LONG_MS), true)
    t.same((await keysOf(redis, prefix)).filter((key) => key.includes('track')), [])
    t.same(await store.claimDue({ owner: 'tracker-a', leaseMs: LONG_MS, limit: 10 }), { sessions: [], nextDueMs: undefined })
    t.same(await store.sessionsOf('ip-1'), [])
  })

  t.test('tracking: claimDue leases due entries earliest first and reports when the next is due', async (t) => {
    const { store } = await storeFor(t)
    await store.track('sess-late', { firstCheckMs: 30_000 })
    await store.track('sess-b', { firstCheckMs: 0 })
    await store.bind(await slotOf(store, request('ip-1')), 'sess-a', LONG_MS, { firstCheckMs: 0 })
    await waitUntil(async () => (await store.claimDue({ owner: 'probe', leaseMs: 1, limit: 0 })).nextDueMs === 0, 'both are due')

    const first = await store.claimDue({ owner: 'tracker-a', leaseMs: LONG_MS, limit: 1 })
    t.equal(first.sessions.length, 1)
    t.equal(first.nextDueMs, 0, 'another entry is due and was not claimed')
    const second = await store.claimDue({ owner: 'tracker-a', leaseMs: LONG_MS, limit: 10 })
    const claimed = [...first.sessions, ...second.sessions]
    t.same(claimed.map(({ sessionId }) => sessionId).sort(), ['sess-a', 'sess-b'])
    t.same(claimed.map(({ key }) => key).sort(), ['ip-1', undefined], 'a session tracked without a slot has no key')
    t.ok(claimed.every(({ ageMs }) => Number.isInteger(ageMs) && ageMs >= 0 && ageMs < 10_000), 'ageMs')
    t.ok(second.nextDueMs !== undefined && second.nextDueMs > 25_000 && second.nextDueMs <= 30_000, `nextDueMs ${second.nextDueMs}: sess-late, not the leased ones`)
    t.same((await store.claimDue({ owner: 'tracker-b', leaseMs: LONG_MS, limit: 10 })).sessions, [], 'leased entries are not due')
  })

  t.test('tracking: reschedule stores the counts, and with ended frees the slot at once', async (t) => {
    const { store } = await storeFor(t)
    const key = request('ip-1', { concurrency: 1 })
    await store.bind(await slotOf(store, key), 'sess-1', LONG_MS, { firstCheckMs: 0 })
    const claim = async (): Promise<ClaimResult> => await store.claimDue({ owner: 'tracker-a', leaseMs: LONG_MS, limit: 10 })
    await waitUntil(async () => (await claim()).sessions.length === 1, 'sess-1 is claimed')

    t.equal(await store.reschedule('sess-1', 'tracker-a', { delayMs: 0, checks: 2 }), true)
    t.equal((await store.acquire(key)).ok, false, 'not ended: the slot is held')
    await waitUntil(async () => ((await claim()).sessions[0]?.checks ?? 0) === 2, 'due again with checks 2')

    t.equal(await store.reschedule('sess-1', 'tracker-a', { delayMs: 0, ended: true, deliveries: 1 }), true)
    t.equal((await store.acquire(key)).ok, true, 'ended: the slot is free')
    t.same(await store.sessionsOf('ip-1'), [])
    let entry: TrackedSession | undefined
    await waitUntil(async () => (entry = (await claim()).sessions[0]) !== undefined, 'due again')
    t.match(entry, { sessionId: 'sess-1', key: 'ip-1', checks: 2, ended: true, deliveries: 1 }, 'the counts are kept')
    t.equal(await store.reschedule('sess-1', 'tracker-b', { delayMs: 0 }), false, 'not the owner')
    t.equal(await store.untrack('sess-1', 'tracker-b'), false, 'not the owner')
    t.equal(await store.untrack('sess-1', 'tracker-a'), true)
    t.equal(await store.untrack('sess-1'), false, 'gone')
    t.equal(await store.reschedule('sess-1', 'tracker-a', { delayMs: 0 }), false, 'gone')
  })

  t.test('tracking: a rescheduled entry is no longer leased but stays its owner\'s; untrack without owner and markEnded free the slot', async (t) => {
    const { store } = await storeFor(t)
    const key = request('ip-1', { concurrency: 2 })
    await store.bind(await slotOf(store, key), 'sess-1', LONG_MS, { firstCheckMs: 0 })
    await store.bind(await slotOf(store, key), 'sess-2', LONG_MS, { firstCheckMs: LONG_MS })
    await waitUntil(async () => (await store.claimDue({ owner: 'tracker-a', leaseMs: LONG_MS, limit: 10 })).sessions.length === 1, 'sess-1 is claimed')
    t.equal(await store.reschedule('sess-1', 'tracker-a', { delayMs: LONG_MS }), true)
    t.equal(await store.reschedule('sess-1', 'tracker-a', { delayMs: LONG_MS }), true, 'the owner keeps it until another tracker claims it')
    t.equal(await store.reschedule('sess-1', 'tracker-b', { delayMs: LONG_MS }), false, 'nobody else may')
    t.same((await store.sessionsOf('ip-1')).sort(), ['sess-1', 'sess-2'])

    t.equal(await store.markEnded('sess-2'), true)
    t.same(await store.sessionsOf('ip-1'), ['sess-1'], 'markEnded freed the slot of sess-2')
    const { sessions } = await store.claimDue({ owner: 'tracker-a', leaseMs: LONG_MS, limit: 10 })
    t.match(sessions, [{ sessionId: 'sess-2', ended: true }], 'markEnded made it due now')
    t.equal(await store.markEnded('sess-2'), true, 'still tracked')
    t.same((await store.claimDue({ owner: 'tracker-b', leaseMs: LONG_MS, limit: 10 })).sessions, [], 'a leased entry stays leased')
    t.equal(await store.reschedule('sess-2', 'tracker-a', { delayMs: 0 }), true, 'and its owner keeps the lease')

    t.equal(await store.untrack('sess-1'), true, 'without owner, whoever holds it')
    t.equal((await store.acquire(key)).ok, true, 'untrack freed the slot of sess-1')
    t.same(await store.sessionsOf('ip-1'), [])
    t.equal(await store.markEnded('sess-unknown'), false)
    t.equal(await store.untrack('sess-unknown'), false)
  })

  t.test('tracking: releaseSession frees the slot and keeps the session tracked', async (t) => {
    const { store } = await storeFor(t)
    const key = request('ip-1', { concurrency: 1 })
    await store.bind(await slotOf(store, key), 'sess-1', LONG_MS, { firstCheckMs: 0 })
    t.equal(await store.releaseSession('sess-1'), true)
    t.equal((await store.acquire(key)).ok, true)
    t.same(await store.sessionsOf('ip-1'), [])
    await waitUntil(async () => (await store.claimDue({ owner: 'tracker-a', leaseMs: LONG_MS, limit: 10 })).sessions.length === 1, 'still tracked')
    t.equal(await store.untrack('sess-1', 'tracker-a'), true)
  })

  t.test('tracking: two app instances never claim the same entry twice under 200 parallel claims', async (t) => {
    const prefix = testPrefix()
    const instances = [
      new RedisSessionStore({ client: await redisClient(t, server), prefix }),
      new RedisSessionStore({ client: await redisClient(t, server), prefix })
    ]
    const [one, two] = instances as [RedisSessionStore, RedisSessionStore]
    const ids = Array.from({ length: 300 }, (_, i) => `sess-${i}`)
    await Promise.all(ids.map(async (id, i) => {
      const instance = i % 2 === 0 ? one : two
      if (i % 3 === 0) return await instance.track(id, { firstCheckMs: 0 })
      await instance.bind(await slotOf(instance, request(`ip-${i % 7}`, { concurrency: 300 })), id, LONG_MS, { firstCheckMs: 0 })
    }))
    await waitUntil(async () => (await one.claimDue({ owner: 'probe', leaseMs: 1, limit: 0 })).nextDueMs === 0, 'due')
    const claims = await Promise.all(Array.from({ length: 200 }, (_, i) =>
      (i % 2 === 0 ? one : two).claimDue({ owner: `tracker-${i % 2}`, leaseMs: LONG_MS, limit: 2 })))
    const claimed = claims.flatMap(({ sessions }) => sessions.map(({ sessionId }) => sessionId))
    t.equal(claimed.length, 300, 'every entry claimed')
    t.equal(new Set(claimed).size, 300, 'none twice')
    t.same((await one.claimDue({ owner: 'tracker-0', leaseMs: LONG_MS, limit: 300 })).sessions, [])
  })

  t.test('tracking: an owner that stops has its entries taken over after leaseMs', async (t) => {
    const prefix = testPrefix()
    const dying = new RedisSessionStore({ client: await redisClient(t, server), prefix })
    const survivor = new RedisSessionStore({ client: await redisClient(t, server), prefix })
    const key = request('ip-1', { concurrency: 2 })
    await dying.bind(await slotOf(dying, key), 'sess-1', LONG_MS, { firstCheckMs: 0 })
    await dying.bind(await slotOf(dying, key), 'sess-2', LONG_MS, { firstCheckMs: 0 })
    const leaseMs = 300
    await waitUntil(async () => (await dying.claimDue({ owner: 'probe', leaseMs: 1, limit: 0 })).nextDueMs === 0, 'both are due')
    const leasedAt = Date.now()
    t.equal((await dying.claimDue({ owner: 'dying', leaseMs, limit: 10 })).sessions.length, 2, 'the first owner claims both')

    const early = await survivor.claimDue({ owner: 'survivor', leaseMs: LONG_MS, limit: 10 })
    t.same(early.sessions, [], 'leased to the first owner')
    t.ok(early.nextDueMs !== undefined && early.nextDueMs <= leaseMs, `due again when the lease ends: ${early.nextDueMs} ms`)

    let taken: TrackedSession[] = []
    await waitUntil(async () => (taken = [...taken, ...(await survivor.claimDue({ owner: 'survivor', leaseMs: LONG_MS, limit: 10 })).sessions]).length === 2, 'the survivor takes both over')
    t.ok(Date.now() - leasedAt >= leaseMs - 2, 'not before the lease ended')
    t.same(taken.map(({ sessionId }) => sessionId).sort(), ['sess-1', 'sess-2'])
    t.equal(await dying.reschedule('sess-1', 'dying', { delayMs: 0 }), false, 'a late reschedule of the first owner fails')
    t.equal(await dying.untrack('sess-2', 'dying'), false, 'a late untrack of the first owner fails')
    t.equal(await survivor.reschedule('sess-1', 'survivor', { delayMs: 0, ended: true }), true)
    t.equal(await survivor.untrack('sess-2', 'survivor'), true)
    t.equal((await survivor.acquire(key)).ok, true, 'both slots are free')
  })

  t.test('tracking: every tracking key expires, renewed by claims and reschedules; none is left once untracked', async (t) => {
    const { store, redis, prefix } = await storeFor(t)
    const day = 24 * 3_600_000
    await store.track('sess-a', { firstCheckMs: 0 })
    await store.bind(await slotOf(store, request('ip-1')), 'sess-b', LONG_MS, { firstCheckMs: 5_000 })
    const ttl = async (name: string): Promise<number> => await redis.pttl(`{${prefix}}${name}`)
    const a = await ttl('track:sess-a')
    const b = await ttl('track:sess-b')
    t.ok(a > day - 1_000 && a <= day, `track:sess-a expires a day after it is due: ${a}`)
    t.ok(b > day + 4_000 && b <= day + 5_000, `track:sess-b: ${b}`)
    t.ok(await ttl('tracked') > b - 1_000, 'the due set lives as long as its last entry')

    await waitUntil(async () => (await store.claimDue({ owner: 'tracker-a', leaseMs: 3_600_000, limit: 10 })).sessions.length === 1, 'sess-a is claimed')
    const claimed = await ttl('track:sess-a')
    t.ok(claimed > day + 3_500_000 && claimed <= day + 3_600_000, `a claim renews it past the lease: ${claimed}`)
    t.ok(await ttl('tracked') > claimed - 1_000, 'the due set too')
    t.equal(await store.reschedule('sess-a', 'tracker-a', { delayMs: 0 }), true)
    const rescheduled = await ttl('track:sess-a')
    t.ok(rescheduled > day - 1_000 && rescheduled <= day, `a reschedule sets it from its new due time: ${rescheduled}`)
    t.ok(await ttl('tracked') >= claimed - 1_000, 'the due set never expires before an entry')

    t.equal(await store.untrack('sess-a'), true)
    t.equal(await store.untrack('sess-b'), true)
    t.same(await keysOf(redis, prefix), [], 'no key is left behind')
  })

  t.test('tracking: an entry whose hash expired is dropped by the next claim', async (t) => {
    const { store, redis, prefix } = await storeFor(t)
    await store.track('sess-gone', { firstCheckMs: 0 })
    await store.track('sess-kept', { firstCheckMs: 0 })
    await redis.pexpire(`{${prefix}}track:sess-gone`, 1)
    await waitUntil(async () => await redis.exists(`{${prefix}}track:sess-gone`) === 0, 'the hash expired')
    let claimed: TrackedSession[] = []
    await waitUntil(async () => (claimed = (await store.claimDue({ owner: 'tracker-a', leaseMs: LONG_MS, limit: 1 })).sessions).length === 1, 'due')
    t.match(claimed, [{ sessionId: 'sess-kept' }], 'the claim skips it and still fills its limit')
    t.same(await redis.zrange(`{${prefix}}tracked`, 0, -1), ['sess-kept'])
  })

  t.test('tracking: sessionsOf lists only tracked sessions bound to live slots of the key', async (t) => {
    const { store } = await storeFor(t)
    const ip1 = request('ip-1', { concurrency: 10 })
    await store.bind(await slotOf(store, ip1), 'sess-tracked', LONG_MS, { firstCheckMs: LONG_MS })
    await store.bind(await slotOf(store, ip1), 'sess-untracked', LONG_MS)
    await store.bind(await slotOf(store, ip1), 'sess-short', 30, { firstCheckMs: LONG_MS })
    await store.bind(await slotOf(store, ip1), 'sess-released', LONG_MS, { firstCheckMs: LONG_MS })
    await store.releaseSession('sess-released')
    await slotOf(store, ip1) // pending, no session
    await store.bind(await slotOf(store, request('ip-2', { concurrency: 1 })), 'sess-other', LONG_MS, { firstCheckMs: LONG_MS })
    await store.track('sess-slotless', { firstCheckMs: LONG_MS })
    await waitUntil(async () => (await store.sessionsOf('ip-1')).length === 1, 'the short slot expired')
    t.same(await store.sessionsOf('ip-1'), ['sess-tracked'])
    t.same(await store.sessionsOf('ip-2'), ['sess-other'])
    t.same(await store.sessionsOf('ip-unknown'), [])
  })

  t.test('tracking keys follow the client keyPrefix', async (t) => {
    const redis = await redisClient(t, server, { keyPrefix: 'app:' })
    const { store, prefix } = await storeFor(t, redis)
    await store.bind(await slotOf(store, request('ip-1')), 'sess-1', LONG_MS, { firstCheckMs: 0 })
    await store.track('sess-2', { firstCheckMs: 0 })
    const plain = await redisClient(t, server)
    t.same((await plain.keys(`app:{${prefix}}t*`)).sort(), [`app:{${prefix}}track:sess-1`, `app:{${prefix}}track:sess-2`, `app:{${prefix}}tracked`])
    t.equal(await store.markEnded('sess-1'), true)
    t.equal(await store.untrack('sess-1'), true)
    t.equal(await store.untrack('sess-2'), true)
    t.same(await plain.keys(`*{${prefix}}*`), [])
  })

  t.test('keeps working after Redis restarts (the scripts are loaded again)', { skip: server.external && 'needs a redis-server the test starts itself' }, async (t) => {
    const { store } = await storeFor(t)
    t.equal((await store.acquire(request('ip-1'))).ok, true)
    await server.stop()
    await t.rejects(store.acquire(request('ip-1')), 'fails while Redis is down')
    await server.restart()
    let result: AcquireResult | undefined
    for (let attempt = 0; result === undefined && attempt < 50; attempt++) {
      result = await store.acquire(request('ip-1')).catch(async () => { await sleep(50); return undefined })
    }
    t.match(result, { ok: true }, 'the restarted Redis has lost the slot and the script cache')
  })

  t.test('rejects a client that is not ioredis and a prefix that breaks the hash tag', async (t) => {
    const redis = await redisClient(t, server)
    const message = /client" must be an ioredis Redis or Cluster client/
    t.throws(() => new RedisSessionStore({} as never), message)
    t.throws(() => new RedisSessionStore({ client: {} as never }), message)
    for (const prefix of ['', 'a{b', 'a}b', 7]) {
      t.throws(() => new RedisSessionStore({ client: redis, prefix: prefix as string }), /prefix" must be a non-empty string without \{ or \}/)
    }
    t.doesNotThrow(() => new RedisSessionStore({ client: redis }), 'the default prefix')
  })

  t.test('regression: sessionsOf lists a session bound to a second slot once, under that slot (it listed it for every slot that once held it)', async (t) => {
    const { store } = await storeFor(t)
    const first = await slotOf(store, request('ip-1'))
    t.equal(await store.bind(first, 'sess-1', LONG_MS, { firstCheckMs: LONG_MS }), true)
    t.equal(await store.bind(await slotOf(store, request('ip-1')), 'sess-1', LONG_MS, { firstCheckMs: LONG_MS }), true)
    t.same(await store.sessionsOf('ip-1'), ['sess-1'], 'once, not once per slot')
    t.equal(await store.releaseSession('sess-1'), true)
    t.same(await store.sessionsOf('ip-1'), [], 'the first slot, still held, is not the session\'s')
    await store.release(first)
  })

  t.test('bad constructor input, options left out included, throws the option error with its fix, never a TypeError', async (t) => {
    const redis = await redisClient(t, server)
    const bad: Array<[string, () => unknown, RegExp]> = [
      ['no options', () => new (RedisSessionStore as new (options?: unknown) => unknown)(), /Fix: pass new RedisSessionStore\(\{ client: new Redis/],
      ['the client itself instead of { client }', () => new RedisSessionStore(redis as never), /Fix: pass new RedisSessionStore\(\{ client: new Redis/],
      ['a prefix with a brace', () => new RedisSessionStore({ client: redis, prefix: 'a{b' }), /Fix: e\.g\. prefix: 'myapp:oshara:'/]
    ]
    for (const [what, build, fix] of bad) {
      t.throws(build, { name: 'OsharaInvalidOptionsError', code: 'FST_OSHARA_INVALID_OPTIONS', message: fix }, what)
      try {
        build()
      } catch (error) {
        t.ok(error instanceof OsharaInvalidOptionsError && !(error instanceof TypeError), `${what}: the option error, not a TypeError`)
        t.match((error as OsharaInvalidOptionsError).fix, /\S/, `${what}: carries the fix`)
      }
    }
  })
}
