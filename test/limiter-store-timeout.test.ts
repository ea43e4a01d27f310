import t, { type Test } from 'tap'
import { waitUntil } from './helpers/wait.js'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { MemorySessionStore, RedisSessionStore } from '../lib/index.js'
import type { AcquireResult, SessionStore, SlotRequest } from '../lib/stores.js'
import type { OsharaEmulator } from '../lib/emulator.js'
import { buildApp, logCapture, postToken } from './helpers/app.js'
import { sessionRequests, startEmulator } from './helpers/emulator.js'
import { REDIS_MISSING, startRedisServer } from './helpers/redis-server.js'

// SPEC section 6: a store slower than storeTimeoutMs gets onStoreError; whatever it answers
// later must not hold a slot (else the key gets 429 for pendingMs, 20 s by default).

const byUser = (request: { headers: Record<string, unknown> }): string => String(request.headers['x-user'] ?? 'anonymous')

function post (app: FastifyInstance, user = 'ann') {
  return postToken(app, undefined, { 'x-user': user })
}

interface Gate {
  promise: Promise<void>
  open: () => void
}

function gate (): Gate {
  let open = (): void => {}
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

/** Lets pending promise jobs and the unhandled-rejection check of this turn run. */
async function nextTurns (): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
}

/**
 * A slow store: `acquire` reserves in a MemorySessionStore at once, like a Redis script that ran,
 * but answers only when `late` opens, like a reply stuck behind a slow link or an offline queue.
 */
class SlowStore implements SessionStore {
  readonly memory = new MemorySessionStore()
  late: Gate | undefined
  failLate = false
  /** Acquire calls that have answered (resolved or rejected). */
  answered = 0
  readonly released: string[] = []

  async acquire (request: SlotRequest): Promise<AcquireResult> {
    try {
      const result = await this.memory.acquire(request)
      if (this.late !== undefined) {
        await this.late.promise
        if (this.failLate) throw new Error('store failed late')
      }
      return result
    } finally {
      this.answered++
    }
  }

  bind (slotId: string, sessionId: string, holdMs: number): Promise<boolean> {
    return this.memory.bind(slotId, sessionId, holdMs)
  }

  async release (slotId: string): Promise<void> {
    await this.memory.release(slotId)
    this.released.push(slotId)
  }

  releaseSession (sessionId: string, key?: string): Promise<boolean> {
    return this.memory.releaseSession(sessionId, key)
  }
}

async function slowApp (t: Test, emulator: OsharaEmulator, store: SessionStore, onStoreError: 'deny' | 'allow' = 'deny'): Promise<FastifyInstance> {
  return await buildApp(t, emulator, { limits: { concurrency: 1, key: byUser, store, storeTimeoutMs: 50, onStoreError } })
}

t.test('a store answer that arrives after storeTimeoutMs leaves no reservation', async (t) => {
  for (const onStoreError of ['deny', 'allow'] as const) {
    t.test(`onStoreError: ${onStoreError}`, async (t) => {
      const emulator = await startEmulator(t)
      const store = new SlowStore()
      const app = await slowApp(t, emulator, store, onStoreError)
      const late = store.late = gate()

      const first = await post(app)
      if (onStoreError === 'deny') {
        t.equal(first.statusCode, 503)
        t.equal(first.json().code, 'FST_OSHARA_UNAVAILABLE')
        t.equal(sessionRequests(emulator).length, 0)
      } else {
        t.equal(first.statusCode, 200, 'served without a limit')
      }
      t.equal(store.memory.size, 1, 'the store did reserve a slot; only its answer is late')

      store.late = undefined
      late.open()
      await waitUntil(() => store.memory.size === 0, 'the late slot is released')
      t.equal(store.released.length, 1)

      t.equal((await post(app)).statusCode, 200, 'the same key gets a session: no 429')
      t.equal((await post(app)).statusCode, 429, 'and the limit holds again')
    })
  }
})

t.test('a store failure that arrives after storeTimeoutMs is dropped, never an unhandled rejection', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.removeListener('unhandledRejection', onUnhandled) })
  const emulator = await startEmulator(t)
  const store = new SlowStore()
  const app = await slowApp(t, emulator, store)
  const late = store.late = gate()
  store.failLate = true

  t.equal((await post(app)).statusCode, 503)
  late.open()
  await waitUntil(() => store.answered === 1, 'the store answers')
  await nextTurns()
  t.same(unhandled, [])
  t.same(store.released, [], 'a failed acquire has nothing to release')
})

t.test('a late "limit reached" answer needs no release', async (t) => {
  const emulator = await startEmulator(t)
  const store = new SlowStore()
  const app = await slowApp(t, emulator, store)
  t.equal((await post(app)).statusCode, 200)
  const late = store.late = gate()
  t.equal((await post(app)).statusCode, 503, 'timed out (the store would have said 429)')
  late.open()
  await waitUntil(() => store.answered === 2, 'the store answers')
  await nextTurns()
  t.same(store.released, [])
  t.equal(store.memory.size, 1, 'the first session keeps its slot')
})

t.test('a late slot whose release fails is logged; it frees when it expires', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const store = new SlowStore()
  store.release = () => Promise.reject(new Error('release failed'))
  const app = await buildApp(t, emulator, { limits: { concurrency: 1, key: byUser, store, storeTimeoutMs: 50 } }, { logger: { level: 'warn', stream: capture.stream } })
  const late = store.late = gate()
  t.equal((await post(app)).statusCode, 503)
  late.open()
  await waitUntil(() => capture.lines().some((line) => /failed to release a slot/.test(String(line.msg))), 'the failed release is logged')
  t.match(capture.lines().find((line) => /failed to release/.test(String(line.msg))), { level: 40, storeError: /release failed/ })
})

t.test('a Redis command queued offline across a restart leaves no reservation', async (t) => {
  const server = await startRedisServer()
  if (server === undefined || server.external) {
    const why = server === undefined ? REDIS_MISSING : 'REDIS_URL is set: this test needs a redis-server it can stop'
    t.comment(why)
    t.skip(why, () => {})
    return
  }
  t.teardown(() => server.stop())
  // The offline queue keeps commands while Redis is away and sends them once it is back.
  const client = new Redis(server.url, { enableOfflineQueue: true, maxRetriesPerRequest: null, retryStrategy: () => 20 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await client.ping()
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, {
    limits: { concurrency: 1, key: byUser, store: new RedisSessionStore({ client, prefix: 'late:' }), storeTimeoutMs: 200 }
  })

  await server.stop()
  await waitUntil(() => client.status !== 'ready', 'the client sees Redis gone')
  const denied = await post(app)
  t.equal(denied.statusCode, 503, 'the acquire waits in the offline queue: timed out')
  t.equal(denied.json().code, 'FST_OSHARA_UNAVAILABLE')

  await server.restart()
  // The queued acquire runs first and its slot is released once its answer arrives; the slot
  // would otherwise hold for pendingMs (20 s), far past this deadline.
  await waitUntil(async () => (await post(app)).statusCode === 200, 'the key gets a session again')
  t.equal(await client.zcard('{late:}global'), 1, 'only the new session holds a slot')
  t.equal(sessionRequests(emulator).length, 1)
})
