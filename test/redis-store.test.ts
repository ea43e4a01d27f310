import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis, type RedisOptions } from 'ioredis'
import { RedisSessionStore } from '../lib/limits/redis-store.js'
import { sessionStoreContract } from '../lib/testing/index.js'
import type { AcquireResult, SlotRequest } from '../lib/limits/store.js'
import { waitUntil } from './helpers/wait.js'
import { REDIS_MISSING, startRedisServer, type RedisServer } from './helpers/redis-server.js'

const LONG_MS = 60_000
/** Prefixes the tests used, so that their keys can be removed from a shared REDIS_URL server. */
const testPrefixes: string[] = []

const server = await startRedisServer()
if (server === undefined) {
  t.comment(REDIS_MISSING)
  t.skip(REDIS_MISSING, () => {})
} else {
  t.teardown(() => server.external ? deleteTestKeys(server) : server.stop())
  defineTests(server)
}

function testPrefix (): string {
  const prefix = `test-${randomUUID()}:`
  testPrefixes.push(prefix)
  return prefix
}

async function deleteTestKeys (server: RedisServer): Promise<void> {
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  for (const prefix of testPrefixes) {
    const keys = await redis.keys(`*{${prefix}}*`)
    if (keys.length > 0) await redis.del(...keys)
  }
  redis.disconnect()
}

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

function defineTests (server: RedisServer): void {
  /** A client closed when `t` ends; like an app instance's own. */
  async function client (t: Test, options: RedisOptions = {}): Promise<Redis> {
    const redis = new Redis(server.url, { lazyConnect: false, maxRetriesPerRequest: 1, ...options })
    redis.on('error', () => {}) // commands fail on their own while Redis is down
    t.teardown(() => redis.disconnect())
    await redis.ping()
    return redis
  }

  /** A store with a prefix of its own, so tests never see each other's slots. */
  async function storeFor (t: Test, redis?: Redis): Promise<{ store: RedisSessionStore, redis: Redis, prefix: string }> {
    redis ??= await client(t)
    const prefix = testPrefix()
    return { store: new RedisSessionStore({ client: redis, prefix }), redis, prefix }
  }

  async function keysOf (redis: Redis, prefix: string): Promise<string[]> {
    return (await redis.keys(`{${prefix}}*`)).sort()
  }

  // The contract, on one client like an app instance's; each case has a store with a prefix of its own.
  // Redis keeps the time, so the expiry cases wait for it in real time, polling with a deadline.
  const contractClient = new Redis(server.url, { maxRetriesPerRequest: 1 })
  contractClient.on('error', () => {}) // the restart test below stops Redis for a while
  t.teardown(() => contractClient.disconnect())
  for (const { name, run } of sessionStoreContract({
    createStore: () => new RedisSessionStore({ client: contractClient, prefix: testPrefix() })
  })) {
    t.test(name, run)
  }

  t.test('two app instances share the global cap: 100 parallel acquires, global 5, exactly 5 slots', async (t) => {
    const prefix = testPrefix()
    const instances = [
      new RedisSessionStore({ client: await client(t), prefix }),
      new RedisSessionStore({ client: await client(t), prefix })
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
    const redis = await client(t)
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
    const redis = await client(t)
    const defined: string[] = []
    const defineCommand = redis.defineCommand.bind(redis)
    redis.defineCommand = (name, definition) => {
      defined.push(name)
      defineCommand(name, definition)
    }
    await storeFor(t, redis)
    const acquire = (redis as unknown as Record<string, unknown>).osharaVoiceV1Acquire
    await storeFor(t, redis)
    t.same(defined, ['osharaVoiceV1Acquire', 'osharaVoiceV1Bind', 'osharaVoiceV1Release', 'osharaVoiceV1ReleaseSession'])
    t.equal((redis as unknown as Record<string, unknown>).osharaVoiceV1Acquire, acquire)
  })

  t.test('key names follow the client keyPrefix', async (t) => {
    const redis = await client(t, { keyPrefix: 'app:' })
    const { store, prefix } = await storeFor(t, redis)
    await store.bind(await slotOf(store, request('ip-1')), 'sess-1', LONG_MS)
    const plain = await client(t)
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
    const redis = await client(t)
    const message = /options\.client must be an ioredis Redis or Cluster client/
    t.throws(() => new RedisSessionStore({} as never), message)
    t.throws(() => new RedisSessionStore({ client: {} as never }), message)
    for (const prefix of ['', 'a{b', 'a}b', 7]) {
      t.throws(() => new RedisSessionStore({ client: redis, prefix: prefix as string }), /options\.prefix must be a non-empty string without \{ or \}/)
    }
    t.doesNotThrow(() => new RedisSessionStore({ client: redis }), 'the default prefix')
  })
}
