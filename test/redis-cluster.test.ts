import t, { type Test } from 'tap'
import { performance } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import type { Cluster } from 'ioredis'
import { RedisSessionStore } from '../lib/limits/redis-store.js'
import { RedisQuotaStore } from '../lib/quota/redis-quota-store.js'
import { quotaStoreContract, sessionStoreContract } from '../lib/testing.js'
import type { OsharaVoiceOptions } from '../lib/index.js'
import { buildApp, postToken } from './helpers/app.js'
import { API_KEY, sessionRequests, startEmulator } from './helpers/emulator.js'
import { clusterClient, redisClusterFor, type ClusterNode, type RedisCluster } from './helpers/redis-cluster.js'
import { waitUntil } from './helpers/wait.js'

// Every Redis store on a real three-master Redis Cluster: the store contracts, two app instances under
// load, and a master stopped mid-run. Each store's keys share the hash tag `{prefix}`, so the prefix
// decides which master serves a store.

const cluster = await redisClusterFor(t)
if (cluster !== undefined) defineTests(cluster)

const byUser = (request: { headers: Record<string, unknown> }): string => String(request.headers['x-user'])

function defineTests (cluster: RedisCluster): void {
  let prefixes = 0
  const prefix = (): string => `test-${++prefixes}:`

  /** A fresh prefix whose keys the master `wanted` serves (or any master but `not`). */
  async function prefixOn ({ wanted, not }: { wanted?: ClusterNode, not?: ClusterNode }): Promise<{ prefix: string, node: ClusterNode }> {
    for (;;) {
      const candidate = prefix()
      const node = await cluster.nodeOf(`{${candidate}}global`)
      if ((wanted === undefined || node === wanted) && node !== not) return { prefix: candidate, node }
    }
  }

  t.test('the session store contract, tracking included, on a Cluster', async (t) => {
    const client = await clusterClient(t, cluster)
    for (const { name, run } of sessionStoreContract({ createStore: () => new RedisSessionStore({ client, prefix: prefix() }), tracking: true })) {
      t.test(name, run)
    }
  })

  t.test('the quota store contract on a Cluster', async (t) => {
    const client = await clusterClient(t, cluster)
    for (const { name, run } of quotaStoreContract({ createStore: () => new RedisQuotaStore({ client, prefix: prefix() }) })) {
      t.test(name, run)
    }
  })

  t.test('a client keyPrefix goes before the hash tag: the scripts still find their keys', async (t) => {
    const client = await clusterClient(t, cluster, { keyPrefix: 'app:' })
    const store = new RedisSessionStore({ client, prefix: prefix() })
    const slot = await store.acquire({ key: 'ip-1', concurrency: 1, global: 1, pendingMs: 60_000 })
    t.match(slot, { ok: true })
    t.match(await store.acquire({ key: 'ip-2', concurrency: 1, global: 1, pendingMs: 60_000 }), { ok: false, scope: 'global' })
  })

  async function instances (t: Test, options: (client: Cluster) => Partial<OsharaVoiceOptions>, emulator: Awaited<ReturnType<typeof startEmulator>>): Promise<[FastifyInstance, FastifyInstance]> {
    return await Promise.all([0, 1].map(async () => await buildApp(t, emulator, { public: true, ...options(await clusterClient(t, cluster)) }))) as [FastifyInstance, FastifyInstance]
  }

  t.test('two instances, waves of 200 parallel requests: exactly global sessions, at most concurrency per user; each tracked session delivered once', async (t) => {
    const CONCURRENCY = 2
    const GLOBAL = 25
    const USERS = 20
    const REQUESTS = 200
    const WAVES = 2
    const emulator = await startEmulator(t)
    const sessionPrefix = prefix()
    const delivered: string[] = []
    const apps = await instances(t, (client) => ({
      apiKey: API_KEY,
      limits: { concurrency: CONCURRENCY, global: GLOBAL, key: byUser, store: new RedisSessionStore({ client, prefix: sessionPrefix }) },
      tracking: { firstCheckMs: 20, maxCheckIntervalMs: 50 },
      onSessionEnd: (_summary, { sessionId }) => { delivered.push(sessionId) }
    }), emulator)
    const started = performance.now()
    let minted = 0
    let limited = 0
    for (let wave = 1; wave <= WAVES; wave++) {
      // Every session minted in a wave is held until the whole wave has answered.
      const replies = await Promise.all(Array.from({ length: REQUESTS }, (_, i) =>
        postToken(apps[i % 2] as FastifyInstance, undefined, { 'x-user': `user-${i % USERS}` }).then((reply) => ({ reply, user: `user-${i % USERS}`, minter: i % 2 }))))
      const ok = replies.filter(({ reply }) => reply.statusCode === 200)
      limited += replies.filter(({ reply }) => reply.statusCode === 429).length
      minted += ok.length
      t.equal(ok.length, GLOBAL, `wave ${wave}: exactly global (${GLOBAL}) sessions held at once`)
      t.equal(replies.length - ok.length, replies.filter(({ reply }) => reply.json().code === 'FST_OSHARA_SESSION_LIMIT').length, `wave ${wave}: the others 429`)
      const perUser = new Map<string, number>()
      for (const { user } of ok) perUser.set(user, (perUser.get(user) ?? 0) + 1)
      t.ok(Math.max(...perUser.values()) <= CONCURRENCY, `wave ${wave}: at most concurrency (${CONCURRENCY}) per user`)
      for (const { reply, user, minter } of ok) {
        const sessionId = reply.json().session_id as string
        emulator.endSession(sessionId)
        // The instance that did not mint it frees it: they share the store.
        const released = await (apps[1 - minter] as FastifyInstance).inject({ method: 'DELETE', url: `/voice-token/${sessionId}`, headers: { 'x-user': user } })
        t.ok(released.statusCode === 204 || released.statusCode === 404, 'freed (204), or freed already by its tracker (404)')
      }
    }
    const elapsedMs = Math.round(performance.now() - started)
    t.equal(sessionRequests(emulator).length, minted, 'an upstream call for each 200 only')
    await waitUntil(() => delivered.length >= minted, `every ended session is delivered (${delivered.length} of ${minted})`, 20_000)
    t.equal(new Set(delivered).size, delivered.length, 'each once')
    t.same(new Set(delivered), new Set(emulator.sessions.keys()), 'every session minted')
    t.comment(`cluster soak: ${WAVES} waves of ${REQUESTS} parallel requests over 2 instances in ${elapsedMs} ms: ${minted} x 200, ${limited} x 429, ` +
      `most held at once ${GLOBAL} (global ${GLOBAL}), at most ${CONCURRENCY} per user, ${delivered.length} deliveries, no duplicate`)
  })

  t.test('a master stopped mid-run: clear 503s while it is down; once it is back, nothing leaked or counted twice', async (t) => {
    const emulator = await startEmulator(t)
    // The limiter on one master, the quota and the replies on another. The reply's claim and the quota
    // come before the limiter: a limiter failure must give both back.
    const limiter = await prefixOn({})
    const quota = await prefixOn({ not: limiter.node })
    const GLOBAL = 8
    const apps = await instances(t, (client) => ({
      limits: { concurrency: 100, global: GLOBAL, key: byUser, storeTimeoutMs: 300, store: new RedisSessionStore({ client, prefix: limiter.prefix }) },
      quota: { key: byUser, window: 'day', sessions: 1000, storeTimeoutMs: 300, store: new RedisQuotaStore({ client, prefix: quota.prefix }) },
      idempotency: { store: new RedisSessionStore({ client, prefix: quota.prefix }) }
    }), emulator)
    const run = async (requests: number, phase: string): Promise<{ ok: string[], statuses: Map<number, number> }> => {
      const replies = await Promise.all(Array.from({ length: requests }, (_, i) =>
        postToken(apps[i % 2] as FastifyInstance, undefined, { 'x-user': 'ann', 'idempotency-key': `${phase}-${i}` })))
      t.notOk(replies.some((reply) => reply.headers['idempotent-replayed'] !== undefined), `${phase}: nothing replayed`)
      const statuses = new Map<number, number>()
      for (const reply of replies) statuses.set(reply.statusCode, (statuses.get(reply.statusCode) ?? 0) + 1)
      for (const reply of replies.filter((reply) => reply.statusCode === 503)) {
        t.match(reply.json(), { code: 'FST_OSHARA_UNAVAILABLE', message: 'Voice sessions are temporarily unavailable; try again shortly' })
        t.equal(reply.headers['retry-after'], '5')
      }
      return { ok: replies.filter((reply) => reply.statusCode === 200).map((reply) => reply.json().session_id as string), statuses }
    }
    const release = async (ids: string[]): Promise<void> => {
      for (const id of ids) t.equal((await apps[0].inject({ method: 'DELETE', url: `/voice-token/${id}`, headers: { 'x-user': 'ann' } })).statusCode, 204)
    }
    const before = await run(GLOBAL, 'before')
    t.same([...before.statuses], [[200, GLOBAL]], 'healthy: global sessions')
    await release(before.ok)

    await limiter.node.stop()
    const started = performance.now()
    const down = await run(40, 'down')
    const downMs = Math.round(performance.now() - started)
    t.same([...down.statuses], [[503, 40]], `the limiter's master down: 503s only (${downMs} ms for 40 requests)`)
    t.equal((await apps[0].oshara.usage('ann')).sessions, GLOBAL, 'the quota (on a live master) counted none of them')

    await limiter.node.start()
    await cluster.waitUntilOk()
    // Both instances' clients find the master again; commands queued while it was away answer late and free what they took.
    await waitUntil(async () => (await postToken(apps[0], undefined, { 'x-user': 'probe' })).statusCode === 200 &&
      (await postToken(apps[1], undefined, { 'x-user': 'probe' })).statusCode === 200, 'both instances serve again', 20_000)
    const probes = [...emulator.sessions.keys()].slice(GLOBAL)
    for (const id of probes) await apps[0].oshara.releaseSession(id)

    // The keys of the failed requests: their claims were given back, so they run afresh.
    const after = await run(GLOBAL + 5, 'down')
    t.same([...after.statuses].sort(), [[200, GLOBAL], [429, 5]], 'back: exactly global sessions again (no slot leaked), the rest 429')
    t.equal((await apps[0].oshara.usage('ann')).sessions, 2 * GLOBAL, 'the quota counted each session once, none of the 503s or 429s')
    t.equal(sessionRequests(emulator).length, 2 * GLOBAL + probes.length, 'no upstream call for a 503')
    t.comment(`cluster outage: ${GLOBAL} x 200 before, 40 x 503 while the limiter's master was down (${downMs} ms), ${GLOBAL} x 200 and 5 x 429 after`)
  })
}
