import t, { type Test } from 'tap'
import { AssertionError } from 'node:assert'
import { install, type Clock as FakeClock } from '@sinonjs/fake-timers'
import { MemoryIdempotentReplies } from '../lib/idempotency/memory-replies.js'
import type { IdempotencyBeginRequest, IdempotencyBeginResult } from '../lib/idempotency/idempotency-store.js'
import { MemorySessionStore } from '../lib/limits/memory-store.js'
import { RedisSessionStore } from '../lib/limits/redis-store.js'
import { idempotencyStoreContract, type IdempotencyStoreContractCase } from '../lib/testing.js'
import { clusterClient, redisClusterFor } from './helpers/redis-cluster.js'
import { redisClient, redisServerFor, testPrefixes } from './helpers/redis-server.js'

const CASES = {
  expiresPending: 'an in-flight mark expires after pendingMs: a late complete then stores nothing',
  expiresReply: 'a completed reply is forgotten ttlMs after it was stored',
  parallel: '100 parallel begins of one key: exactly one starts, the others see it in flight'
} as const

/** Runs every case; returns the failures by case name. */
async function failures (cases: IdempotencyStoreContractCase[]): Promise<Map<string, Error>> {
  const failed = new Map<string, Error>()
  for (const { name, run } of cases) await run().catch((error: Error) => failed.set(name, error))
  return failed
}

function fakeClock (t: Test): FakeClock {
  const clock = install({ toFake: ['performance'] })
  t.teardown(() => clock.uninstall())
  return clock
}

t.test('MemorySessionStore', async (t) => {
  let clock: FakeClock | undefined
  for (const { name, run } of idempotencyStoreContract({ createStore: () => new MemorySessionStore(), advance: (ms) => { clock?.tick(ms) } })) {
    t.test(name, async (t) => {
      clock = fakeClock(t)
      await run()
    })
  }
  t.test('in real time', async (t) => {
    t.same([...(await failures(idempotencyStoreContract({ createStore: () => new MemorySessionStore() }))).keys()], [])
  })
})

t.test('MemoryIdempotentReplies drops expired entries from the oldest on, stopping at the first live one', async (t) => {
  const clock = fakeClock(t)
  const replies = new MemoryIdempotentReplies()
  const begin = (key: string, pendingMs: number): Promise<IdempotencyBeginResult> => replies.beginIdempotent({ key, attempt: 'a', fingerprint: 'f', pendingMs })
  await begin('short', 100)
  await begin('long', 1000)
  await begin('shorter', 50)
  t.equal(replies.size, 3)
  clock.tick(100)
  t.equal(replies.size, 2, 'the oldest expired; the one behind the live one waits')
  t.same(await begin('shorter', 10), { state: 'started' }, 'but an expired entry is never answered')
  clock.tick(900)
  t.equal(replies.size, 0)
})

t.test('the contract fails stores that break it', async (t) => {
  t.test('a store that never forgets', async (t) => {
    fakeClock(t)
    const failed = await failures(idempotencyStoreContract({ createStore: () => new MemorySessionStore(), advance: () => {}, expiryTimeoutMs: 50 }))
    t.same([...failed.keys()].sort(), [CASES.expiresReply, CASES.expiresPending].sort())
    for (const error of failed.values()) t.match(error.message, /still kept 50 ms after it should have expired/)
  })
  class Early extends MemorySessionStore {
    override async beginIdempotent (request: IdempotencyBeginRequest): Promise<IdempotencyBeginResult> {
      return await super.beginIdempotent({ ...request, pendingMs: request.pendingMs / 2 })
    }

    override async completeIdempotent (key: string, attempt: string, reply: string, ttlMs: number): Promise<boolean> {
      return await super.completeIdempotent(key, attempt, reply, ttlMs / 2)
    }
  }
  t.test('a store that forgets early, with fake timers', async (t) => {
    const clock = fakeClock(t)
    const failed = await failures(idempotencyStoreContract({ createStore: () => new Early(), advance: (ms) => { clock.tick(ms) } }))
    t.same([...failed.keys()].sort(), [CASES.expiresReply, CASES.expiresPending].sort())
    for (const error of failed.values()) t.type(error, AssertionError)
    t.match(failed.get(CASES.expiresReply)?.message, /the reply, 1 ms before it expires: expected \{"state":"completed"/)
  })
  t.test('a store that forgets early, in real time', async (t) => {
    const inRealTime = await failures(idempotencyStoreContract({ createStore: () => new Early() }).filter(({ name }) => name === CASES.expiresPending))
    t.match(inRealTime.get(CASES.expiresPending)?.message, /forgotten after \d+ ms, before its 300 ms/)
  })
  t.test('a store that starts every begin', async (t) => {
    class Forgetful extends MemorySessionStore {
      override async beginIdempotent (request: IdempotencyBeginRequest): Promise<IdempotencyBeginResult> {
        await super.beginIdempotent(request)
        return { state: 'started' }
      }
    }
    const failed = await failures(idempotencyStoreContract({ createStore: () => new Forgetful() }))
    t.match(failed.get(CASES.parallel)?.message, /begins that started: 100/)
    t.match(failed.get('a free key starts; a repeat is in flight; another fingerprint is a mismatch')?.message,
      /a repeat while the first runs: expected \{"state":"in-flight"\}, got \{"state":"started"\}/)
  })
  t.test('createStore is required', async (t) => {
    t.throws(() => idempotencyStoreContract({} as never), /options\.createStore must be a function returning a fresh, empty IdempotencyStore/)
  })
})

t.test('RedisSessionStore', async (t) => {
  const server = await redisServerFor(t)
  if (server === undefined) return
  const client = await redisClient(t, server)
  const prefix = testPrefixes(t, server)
  for (const { name, run } of idempotencyStoreContract({ createStore: () => new RedisSessionStore({ client, prefix: prefix() }) })) t.test(name, run)
})

t.test('RedisSessionStore on a Redis Cluster', async (t) => {
  const cluster = await redisClusterFor(t)
  if (cluster === undefined) return
  const client = await clusterClient(t, cluster)
  let n = 0
  for (const { name, run } of idempotencyStoreContract({ createStore: () => new RedisSessionStore({ client, prefix: `idem-${++n}:` }) })) t.test(name, run)
})
