import t from 'tap'
import { RedisSessionStore } from '../lib/limits/redis-store.js'
import { RedisQuotaStore } from '../lib/quota/redis-quota-store.js'
import { quotaStoreContract, sessionStoreContract } from '../lib/testing/index.js'
import { clusterClient, redisClusterFor } from './helpers/redis-cluster.js'

const cluster = await redisClusterFor(t)
if (cluster !== undefined) {
  let n = 0
  const prefix = (): string => `test-${++n}:`
  t.test('session store contract on a Cluster', async (t) => {
    const client = await clusterClient(t, cluster)
    for (const { name, run } of sessionStoreContract({ createStore: () => new RedisSessionStore({ client, prefix: prefix() }), tracking: true })) {
      t.test(name, run)
    }
  })
  t.test('quota store contract on a Cluster', async (t) => {
    const client = await clusterClient(t, cluster)
    for (const { name, run } of quotaStoreContract({ createStore: () => new RedisQuotaStore({ client, prefix: prefix() }) })) {
      t.test(name, run)
    }
  })
}
