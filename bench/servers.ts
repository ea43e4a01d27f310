// One server under test in its own process:
//   OSHARA_URL=http://127.0.0.1:port node --import tsx bench/servers.ts <variant> [log file]
// prints its URL on stdout, then answers the harness over IPC (stats with its peak RSS, close).
// Without a log file, logging is off; with one, pino writes `info` lines to it.
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { Pool } from 'undici'
import osharaVoice, { RedisSessionStore, VERSION, type OsharaVoiceOptions } from '../lib/index.js'
import { AGENT, ORIGIN, ROUTE, serveParent, VARIANTS, type Variant } from './harness.js'

const SESSION_PATH = '/api/agents/agent-session/'

/** What the upstream answers (the fields the routes read). */
interface UpstreamSession {
  token: string
  livekit_url: string
  session_id: string
  room_name: string
  participant_identity: string
  expires_in_seconds?: number
}

/** The plugin's reply shape, for the hand-written routes. */
const REPLY_SCHEMA = {
  type: 'object',
  properties: {
    token: { type: 'string' },
    livekit_url: { type: 'string' },
    session_id: { type: 'string' },
    room_name: { type: 'string' },
    participant_identity: { type: 'string' },
    expires_in_seconds: { type: 'number' },
    server_url: { type: 'string' },
    participant_token: { type: 'string' }
  }
} as const

function replyFields (session: UpstreamSession): Record<string, unknown> {
  return {
    token: session.token,
    livekit_url: session.livekit_url,
    session_id: session.session_id,
    room_name: session.room_name,
    participant_identity: session.participant_identity,
    expires_in_seconds: session.expires_in_seconds ?? 3600,
    server_url: session.livekit_url,
    participant_token: session.token
  }
}

/** The browser's `language`, when it sent one: the only field these routes read. */
function languageOf (body: unknown): string | undefined {
  const language = (body as { language?: unknown } | null | undefined)?.language
  return typeof language === 'string' ? language : undefined
}

/** A: the plugin, default options or with `limits` on the memory store or on Redis. */
async function pluginRoute (app: FastifyInstance, upstream: string, variant: Variant): Promise<() => Promise<void>> {
  const options: OsharaVoiceOptions = { origin: ORIGIN, agent: AGENT, baseUrl: upstream }
  let redis: Redis | undefined
  // All load comes from 127.0.0.1, one limiter key: a concurrency nobody reaches keeps every
  // request served, while each still reserves, and binds, a slot (held for the session's life).
  if (variant === 'plugin-memory') options.limits = { concurrency: 1_000_000 }
  if (variant === 'plugin-redis') {
    redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true })
    await redis.connect()
    options.limits = { concurrency: 1_000_000, store: new RedisSessionStore({ client: redis, prefix: process.env.REDIS_PREFIX ?? 'oshara-bench:' }) }
  }
  await app.register(osharaVoice, options)
  return async () => { await redis?.quit() }
}

/**
 * B: the floor. A hand-written route, one keep-alive undici `Pool`, `Pool.request` with the
 * plugin's payload and headers, the same reply fields through a response schema. No body
 * schema, no timeout, no retry, no status check beyond 200.
 */
function undiciRoute (app: FastifyInstance, upstream: string): () => Promise<void> {
  const pool = new Pool(upstream, { connect: { timeout: 3000 } })
  const headers = [
    'content-type', 'application/json',
    'accept', 'application/json',
    'origin', ORIGIN,
    'user-agent', `fastify-oshara-voice/${VERSION}`
  ]
  app.post(ROUTE, { schema: { response: { 200: REPLY_SCHEMA } } }, async (request, reply) => {
    const language = languageOf(request.body)
    const response = await pool.request({
      path: SESSION_PATH,
      method: 'POST',
      headers: [...headers, 'x-request-id', randomUUID()],
      body: JSON.stringify(language === undefined ? { agent: AGENT } : { agent: AGENT, language })
    })
    if (response.statusCode !== 200) {
      await response.body.dump()
      throw new Error(`upstream answered ${response.statusCode}`)
    }
    const session = await response.body.json() as UpstreamSession
    reply.header('cache-control', 'no-store')
    return replyFields(session)
  })
  return () => pool.close()
}

/** C: the route as Oshara's docs show it: global `fetch` per request, then `r.json()`. */
function fetchRoute (app: FastifyInstance, upstream: string): () => Promise<void> {
  const url = upstream + SESSION_PATH
  app.post(ROUTE, async (request) => {
    const session = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: ORIGIN },
      body: JSON.stringify({ agent: AGENT, language: languageOf(request.body) ?? 'en' })
    }).then((r) => r.json()) as UpstreamSession
    return replyFields(session)
  })
  return async () => {}
}

async function main (): Promise<void> {
  const variant = process.argv[2] as Variant
  const logFile = process.argv[3]
  const upstream = process.env.OSHARA_URL
  if (!VARIANTS.includes(variant) || upstream === undefined) {
    console.error(`usage: OSHARA_URL=<emulator url> node --import tsx bench/servers.ts <${VARIANTS.join('|')}> [log file]`)
    process.exit(2)
  }
  const app = Fastify({ logger: logFile === undefined ? false : { level: 'info', file: logFile } })
  let cleanup: () => Promise<void>
  if (variant === 'undici') cleanup = undiciRoute(app, upstream)
  else if (variant === 'fetch') cleanup = fetchRoute(app, upstream)
  else cleanup = await pluginRoute(app, upstream, variant)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  serveParent(url, {
    close: async () => {
      await app.close()
      await cleanup()
    }
  })
}

await main()
