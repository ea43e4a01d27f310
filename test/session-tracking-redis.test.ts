import t from 'tap'
import { Redis } from 'ioredis'
import { RedisSessionStore } from '../lib/index.js'
import { buildApp, postToken } from './helpers/app.js'
import { API_KEY, startEmulator } from './helpers/emulator.js'
import { redisServerFor } from './helpers/redis-server.js'
import { waitUntil } from './helpers/wait.js'

// Several instances on one Redis: each ended session delivered by exactly one of them; none lost when one closes.

const SESSIONS = 1000

t.test(`${SESSIONS} sessions over two instances sharing one Redis: onSessionEnd exactly once each, none lost when one closes midway`, async (t) => {
  const server = await redisServerFor(t)
  if (server === undefined) return
  const emulator = await startEmulator(t, { record: false })
  const delivered = new Map<string, string[]>()
  const mismatched: string[] = []
  const instance = async (name: string) => {
    const client = new Redis(server.url)
    t.teardown(() => { client.disconnect() })
    const app = await buildApp(t, emulator, {
      apiKey: API_KEY,
      limits: { concurrency: 1, key: (request) => String(request.headers['x-user']), store: new RedisSessionStore({ client, prefix: 'lifecycle:' }) },
      tracking: { firstCheckMs: 5, maxCheckIntervalMs: 40, leaseMs: 500, concurrency: 8 },
      onSessionEnd: (summary, { sessionId, key }) => {
        if (summary.session_id !== sessionId || key?.startsWith('user-') !== true) mismatched.push(sessionId)
        delivered.set(sessionId, [...delivered.get(sessionId) ?? [], name])
      }
    })
    return app
  }
  const [first, second] = [await instance('first'), await instance('second')]

  const minted: string[] = []
  for (let i = 0; i < SESSIONS; i += 50) {
    const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => postToken((i + j) % 2 === 0 ? first : second, undefined, { 'x-user': `user-${i + j}` })))
    for (const response of batch) minted.push(response.json().session_id as string)
  }
  t.equal(new Set(minted).size, SESSIONS, 'every request minted a session')
  for (const sessionId of minted) emulator.endSession(sessionId)

  await waitUntil(() => delivered.size >= SESSIONS / 4, 'a quarter is delivered', 30_000)
  await first.close()
  await waitUntil(() => delivered.size === SESSIONS, 'every session is delivered', 60_000)
  const twice = [...delivered].filter(([, by]) => by.length > 1)
  t.same(twice, [], 'no session delivered twice')
  t.same(mismatched, [], 'each delivery has its summary and its key')
  t.ok([...delivered.values()].some(([by]) => by === 'first') && [...delivered.values()].some(([by]) => by === 'second'), 'both instances delivered')
  t.equal((await postToken(second, undefined, { 'x-user': 'user-0' })).statusCode, 200, 'every slot is free')
})

t.test('an instance that starts after another died follows the sessions it left behind, without minting one itself', async (t) => {
  const server = await redisServerFor(t)
  if (server === undefined) return
  const emulator = await startEmulator(t)
  const delivered: Array<[string, string]> = []
  const instance = async (name: string) => {
    const client = new Redis(server.url)
    t.teardown(() => { client.disconnect() })
    return await buildApp(t, emulator, {
      apiKey: API_KEY,
      limits: { concurrency: 1, key: () => 'user-1', store: new RedisSessionStore({ client, prefix: 'left-behind:' }) },
      tracking: { firstCheckMs: 5, maxCheckIntervalMs: 40, leaseMs: 500 },
      onSessionEnd: (_summary, { sessionId }) => { delivered.push([sessionId, name]) }
    })
  }
  const gone = await instance('gone')
  const sessionId = (await postToken(gone)).json().session_id as string
  await gone.close()
  await instance('new')
  emulator.endSession(sessionId)
  await waitUntil(() => delivered.length > 0, 'the new instance delivers the ended session', 20_000)
  t.same(delivered, [[sessionId, 'new']])
})
