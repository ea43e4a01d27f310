/**
 * Session limits shared by every instance of your app, in Redis: at most 2 active calls per
 * client (by IP, the default key) and 20 across all of them (your Oshara plan's limit), however
 * many processes serve /voice-token. A call ends with DELETE /voice-token/:session_id; a slot
 * that is never released frees itself when the session expires.
 *
 *   redis-server &   # or set REDIS_URL
 *   node --import tsx examples/redis-limits.ts
 *
 * Run directly, it starts TWO instances (ports 3000 and 3001) on one Redis and a local Oshara
 * emulator, so you can see a session minted on one counted on the other.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
// In your app: import osharaVoice, { RedisSessionStore } from 'fastify-oshara-voice'
import osharaVoice, { RedisSessionStore } from '../lib/index.js'
import { createOsharaEmulator } from '../lib/emulator/index.js'
import { isMain } from './run-with-emulator.js'

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

if (isMain(import.meta.url)) {
  const origin = 'https://app.example.com'
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const emulator = await createOsharaEmulator({ characters: [{ slug: 'support-bot', allowed_origins: [origin] }] })
  const port = Number(process.env.PORT ?? 3000)
  const apps = [
    await build({ origin, baseUrl: emulator.url, redisUrl, logger: true }),
    await build({ origin, baseUrl: emulator.url, redisUrl, logger: true })
  ]
  const closeAll = async (): Promise<void> => {
    await Promise.all(apps.map((app) => app.close()))
    await emulator.close()
  }
  const stop = (): void => { closeAll().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    const urls = [
      await apps[0]!.listen({ port, host: '127.0.0.1' }),
      await apps[1]!.listen({ port: port + 1, host: '127.0.0.1' })
    ]
    console.log(`redis-limits example: two instances, ${urls.join(' and ')}, sharing ${redisUrl} (Oshara emulator at ${emulator.url})`)
    console.log(`  try: curl -X POST ${urls[0]}/voice-token three times across both instances: the third gets 429`)
  } catch (error) {
    await closeAll()
    throw error
  }
}
