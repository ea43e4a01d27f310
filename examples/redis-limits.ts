/**
 * Session limits shared by every instance of your app, in Redis: at most 2 active calls per
 * client (by IP, the default key) and 20 across all of them (your Oshara plan's limit), however
 * many processes serve /voice-token. A call ends with DELETE /voice-token/:session_id; a slot
 * that is never released frees itself when the session expires.
 *
 *   redis-server &   # or set REDIS_URL
 *   node --import tsx examples/redis-limits.ts
 *
 * Run directly, it starts TWO instances (ports PORT and PORT + 1, default 3000 and 3001) on one
 * Redis and a local Oshara emulator, so you can see a session minted on one counted on the other.
 * It first checks that Redis answers (for at most 2 s) and, if not, says how to start it.
 *
 * Each run uses a key prefix of its own (`oshara-example-<random>:`). Slots live in Redis, not in
 * the process, and outlast it by design (a crashed instance must not free calls still running);
 * the slots of a previous run belong to sessions of its emulator, which is gone, so a fresh
 * prefix lets a second run start with every slot free. Releasing the slots on close would not be
 * enough: a run killed or stopped twice never gets to release them. The old keys expire with
 * their sessions (an hour). In your app, every instance uses the same fixed prefix instead.
 */
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
// In your app: import osharaVoice, { RedisSessionStore } from 'fastify-oshara-voice'
import osharaVoice, { RedisSessionStore } from '../lib/index.js'
import { createOsharaEmulator } from '../lib/emulator.js'
import { closeOnSignal, EXAMPLE_ORIGIN, isMain, listenOn, portFromEnv, startExample } from './run-with-emulator.js'

export interface RedisExampleOptions {
  origin: string
  baseUrl?: string
  /** Default redis://127.0.0.1:6379 */
  redisUrl?: string
  /** Key prefix in Redis; instances that share limits use the same one. Default 'oshara:'. */
  prefix?: string
  /** Most active calls per client. Default 2. */
  concurrency?: number
  logger?: boolean
}

export async function build (options: RedisExampleOptions): Promise<FastifyInstance> {
  const { origin, baseUrl, redisUrl = 'redis://127.0.0.1:6379', prefix, concurrency = 2, logger = false } = options
  const app = Fastify({ logger })
  // Fail commands fast while Redis is down; the limiter then answers 503 (onStoreError: 'deny').
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  redis.on('error', (error) => app.log.warn({ err: error }, 'redis connection error'))
  // You own the client: close it with the app.
  app.addHook('onClose', async () => { await redis.quit() })

  await app.register(osharaVoice, {
    origin,
    agent: 'support-bot',
    ...(baseUrl === undefined ? {} : { baseUrl }),
    limits: {
      concurrency,
      global: 20,
      store: new RedisSessionStore({ client: redis, ...(prefix === undefined ? {} : { prefix }) }),
      onStoreError: 'deny'
    }
  })
  return app
}

/** How long the example waits for Redis to answer before it gives up and says how to start it. */
const REDIS_CHECK_MS = 2000

/**
 * Resolves once the Redis server at `redisUrl` answers PING; rejects after at most `timeoutMs`
 * with an error that says how to start one (`redis-server &`) or point REDIS_URL at one.
 */
export async function checkRedis (redisUrl: string, timeoutMs = REDIS_CHECK_MS): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  let failure: Error | undefined
  // The reason is in the rejection below; an unhandled 'error' event would also print a stack.
  redis.on('error', (error: Error) => { failure ??= error })
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    await Promise.race([redis.connect().then(() => redis.ping()), deadline])
  } catch (error) {
    const why = (failure ?? (error as Error)).message
    throw new Error(
      `Redis is not reachable at ${redisUrl} (${why}). ` +
      'Start one with `redis-server &`, or set REDIS_URL to a running one, e.g. ' +
      'REDIS_URL=redis://127.0.0.1:6379 node --import tsx examples/redis-limits.ts', { cause: error })
  } finally {
    clearTimeout(timer)
    redis.disconnect()
  }
}

if (isMain(import.meta.url)) {
  await startExample('redis-limits', async () => {
    const origin = EXAMPLE_ORIGIN
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
    const port = portFromEnv('redis-limits')
    const host = process.env.HOST ?? '127.0.0.1'
    await checkRedis(redisUrl)
    const prefix = `oshara-example-${randomUUID()}:`
    const emulator = await createOsharaEmulator({ characters: [{ slug: 'support-bot', allowed_origins: [origin] }] })
    const apps: FastifyInstance[] = []
    const closeAll = async (): Promise<void> => {
      await Promise.all(apps.map((app) => app.close()))
      await emulator.close()
    }
    try {
      apps.push(await build({ origin, baseUrl: emulator.url, redisUrl, prefix, logger: true }))
      apps.push(await build({ origin, baseUrl: emulator.url, redisUrl, prefix, logger: true }))
      // Two ports from PORT; PORT=0 gives each instance a free port of its own.
      const ports = port === 0 ? [0, 0] : [port, port + 1]
      const suggestedPort = port + 2 > 65535 ? 3000 : port + 2
      const urls = [
        await listenOn(apps[0]!, { name: 'redis-limits', port: ports[0]!, host, suggestedPort }),
        await listenOn(apps[1]!, { name: 'redis-limits', port: ports[1]!, host, suggestedPort })
      ]
      closeOnSignal(closeAll)
      console.log(`redis-limits example: two instances, ${urls.join(' and ')}, sharing ${redisUrl} under keys ${prefix}* (Oshara emulator at ${emulator.url})`)
      console.log(`  try: curl -X POST ${urls[0]}/voice-token three times across both instances: the third gets 429`)
    } catch (error) {
      await closeAll()
      throw error
    }
  })
}
