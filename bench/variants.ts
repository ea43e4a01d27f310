// The servers under test, one entry each. The runner (bench/run.ts) measures them in this order;
// each runs in its own process (bench/child.ts). To add one (the plugin with session tracking,
// with a quota, ...), add an entry whose `setup` registers `POST /voice-token` on `app`.
import { execFileSync } from 'node:child_process'
import { realpathSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import { Pool } from 'undici'
// The built package (dist/), resolved through its `exports` as an application resolves it.
import osharaVoice, { RedisSessionStore, VERSION, type OsharaVoiceOwnClientOptions } from 'fastify-oshara-voice'

export const ORIGIN = 'https://app.example.com'
export const AGENT = 'support-bot'
/** Known to the emulator: session tracking looks sessions up with it. */
export const API_KEY = 'sk_bench'
export const ROUTE = '/voice-token'
const SESSION_PATH = '/api/agents/agent-session/'

export interface Upstreams {
  /** The emulator's base URL. */
  oshara: string
  /** The run's redis-server, when there is one. */
  redis: string | undefined
  /** The masters of the run's Redis Cluster (`host:port,...`), when there is one. */
  cluster: string | undefined
}

export interface Variant {
  label: string
  /** Needs `upstreams.redis` (`'server'`) or `upstreams.cluster` (`'cluster'`): skipped, with a note, without them. */
  redis?: 'server' | 'cluster'
  /** Each request carries an `Idempotency-Key` of its own (so each mints). */
  idempotencyKeys?: boolean
  /** Fastify's logger at `info`, written to /dev/null (pino's own destination); off otherwise. */
  logging?: boolean
  /** Registers the route; resolves to what closes the variant's own clients. */
  setup: (app: FastifyInstance, upstreams: Upstreams) => Promise<() => Promise<void>>
}

/** The logged-in user's context, sent upstream as `metadata` by every variant. */
function userContext (_request: FastifyRequest): Record<string, string> {
  return { user_id: 'user-1042', email: 'ada@example.com', plan: 'pro', org_id: 'org-7', locale: 'en-GB' }
}

/** The upstream body the plugin sends for the browser's `{"language":"en"}`. */
function upstreamBody (request: FastifyRequest): string {
  const { language } = request.body as { language?: string }
  return JSON.stringify({ agent: AGENT, language, metadata: userContext(request) })
}

interface UpstreamSession {
  token: string
  livekit_url: string
  session_id: string
  room_name: string
  participant_identity: string
  expires_in_seconds: number
}

/** The plugin's reply fields. */
function replyOf (session: UpstreamSession): Record<string, unknown> {
  return {
    token: session.token,
    livekit_url: session.livekit_url,
    session_id: session.session_id,
    room_name: session.room_name,
    participant_identity: session.participant_identity,
    expires_in_seconds: session.expires_in_seconds,
    server_url: session.livekit_url,
    participant_token: session.token
  }
}

async function registerPlugin (app: FastifyInstance, oshara: string, extra: Partial<OsharaVoiceOwnClientOptions> = {}, plugin = osharaVoice): Promise<void> {
  await app.register(plugin, { origin: ORIGIN, agent: AGENT, baseUrl: oshara, metadata: userContext, ...extra })
}

/** `BENCH_BASELINE`: another checkout of this package, built (`npm run build`), measured beside this one. */
const BASELINE = process.env.BENCH_BASELINE
/** The baseline's commit when it is a git checkout, else its folder. */
const BASELINE_NAME = BASELINE === undefined ? '' : commitOf(BASELINE)

function commitOf (folder: string): string {
  try {
    // Only a checkout of its own: a folder inside another repository would name that repository's commit.
    const git = (...args: string[]): string => execFileSync('git', ['-C', folder, ...args], { encoding: 'utf8' }).trim()
    if (realpathSync(git('rev-parse', '--show-toplevel')) !== realpathSync(folder)) return folder
    return `commit ${git('rev-parse', '--short', 'HEAD')}`
  } catch {
    return folder
  }
}

async function baselinePlugin (): Promise<typeof osharaVoice> {
  const url = pathToFileURL(join(BASELINE as string, 'dist/esm/index.js')).href
  return (await import(url) as { default: typeof osharaVoice }).default
}

let nextKey = 0
/** One limiter key per request (as many users, one session each): nothing is ever refused, and slots expire after 10 s. */
const spreadLimits = { concurrency: 1000, key: () => `user-${nextKey++}`, holdMs: 10_000 }

const nothing = async (): Promise<void> => {}

/**
 * B: one undici `Pool.request`, no schemas; `logLine`: it logs what the plugin's success line says;
 * `signals`: it makes the two standard `AbortSignal`s the plugin makes per request, as the plugin
 * does (the browser's disconnect signal, and the attempt's, which listens to it), and nothing else of it.
 */
async function floor (app: FastifyInstance, { oshara }: Upstreams, logLine: boolean, signals = false): Promise<() => Promise<void>> {
  const pool = new Pool(oshara)
  const headers = ['content-type', 'application/json', 'accept', 'application/json', 'origin', ORIGIN, 'user-agent', `fastify-oshara-voice/${VERSION}`]
  if (signals) {
    app.post(ROUTE, async (request, reply) => {
      const gone = disconnectSignal(reply.raw)
      const attempt = new AbortController()
      const onGone = (): void => { attempt.abort() }
      gone.addEventListener('abort', onGone)
      try {
        const response = await pool.request({ path: SESSION_PATH, method: 'POST', headers: [...headers, 'x-request-id', randomUUID()], body: upstreamBody(request), signal: attempt.signal })
        if (response.statusCode !== 200) throw new Error(`upstream answered ${response.statusCode}`)
        const session = await response.body.json() as UpstreamSession
        reply.header('cache-control', 'no-store')
        return replyOf(session)
      } finally {
        gone.removeEventListener('abort', onGone)
      }
    })
    return () => pool.close()
  }
  app.post(ROUTE, async (request, reply) => {
    const started = logLine ? Date.now() : 0
    const response = await pool.request({ path: SESSION_PATH, method: 'POST', headers: [...headers, 'x-request-id', randomUUID()], body: upstreamBody(request) })
    if (response.statusCode !== 200) throw new Error(`upstream answered ${response.statusCode}`)
    const session = await response.body.json() as UpstreamSession
    if (logLine) {
      request.log.info({ requestId: request.id, session_id: session.session_id, agent: AGENT, attempts: 1, durationMs: Date.now() - started }, 'session created')
    }
    reply.header('cache-control', 'no-store')
    return replyOf(session)
  })
  return () => pool.close()
}

/** What lib/route/disconnect.ts makes per request (not imported: the bench loads the plugin as installed). */
function disconnectSignal (response: FastifyReply['raw']): AbortSignal {
  const controller = new AbortController()
  response.on('close', () => { if (!response.writableFinished) controller.abort() })
  return controller.signal
}

export const VARIANTS: Record<string, Variant> = {
  A: {
    label: 'A: the plugin',
    setup: async (app, { oshara }) => {
      await registerPlugin(app, oshara)
      return nothing
    }
  },
  'A+memory': {
    label: 'A + limits, memory store',
    setup: async (app, { oshara }) => {
      await registerPlugin(app, oshara, { limits: spreadLimits })
      return nothing
    }
  },
  'A+tracking': {
    // The same limits with session tracking on: what it writes rides on the bind; its lookups start
    // after firstCheckMs, outside the measured window.
    label: 'A + limits, memory store, tracking',
    setup: async (app, { oshara }) => {
      await registerPlugin(app, oshara, { apiKey: API_KEY, limits: spreadLimits, tracking: { firstCheckMs: 3_600_000 } })
      return nothing
    }
  },
  'A+quota': {
    // A sessions budget per key, memory store, never reached: the cost of counting.
    label: 'A + quota (sessions per day), memory store',
    setup: async (app, { oshara }) => {
      await registerPlugin(app, oshara, { quota: { key: spreadLimits.key, window: 'day', sessions: 1_000_000 } })
      return nothing
    }
  },
  'A+tracing': {
    // telemetry: { tracing: true } with a recording tracer (spans made, ended, dropped: no export cost).
    label: 'A + OpenTelemetry tracing',
    setup: async (app, { oshara }) => {
      const { context, trace } = await import('@opentelemetry/api')
      const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks')
      const { BasicTracerProvider } = await import('@opentelemetry/sdk-trace-base')
      trace.setGlobalTracerProvider(new BasicTracerProvider())
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
      await registerPlugin(app, oshara, { telemetry: { tracing: true } })
      return nothing
    }
  },
  'A+idem': {
    // idempotency: true over the memory limiter, each request with a key of its own: a begin and a complete per request.
    label: 'A + limits, memory store, idempotency',
    idempotencyKeys: true,
    setup: async (app, { oshara }) => {
      await registerPlugin(app, oshara, { limits: spreadLimits, idempotency: true })
      return nothing
    }
  },
  'A+Redis': {
    label: 'A + limits, Redis store',
    redis: 'server',
    setup: async (app, { oshara, redis }) => {
      const client = new Redis(redis as string)
      await registerPlugin(app, oshara, { limits: { ...spreadLimits, store: new RedisSessionStore({ client }) } })
      return async () => { await client.quit() }
    }
  },
  'A+Redis+idem': {
    label: 'A + limits, Redis store, idempotency',
    redis: 'server',
    idempotencyKeys: true,
    setup: async (app, { oshara, redis }) => {
      const client = new Redis(redis as string)
      await registerPlugin(app, oshara, { limits: { ...spreadLimits, store: new RedisSessionStore({ client }) }, idempotency: true })
      return async () => { await client.quit() }
    }
  },
  'A+Cluster': {
    // The store's keys share one hash tag: every script runs on the one master that serves it.
    label: 'A + limits, Redis Cluster (3 masters)',
    redis: 'cluster',
    setup: async (app, { oshara, cluster }) => {
      const client = new Cluster((cluster as string).split(',').map((node) => ({ host: node.split(':')[0] as string, port: Number(node.split(':')[1]) })))
      await registerPlugin(app, oshara, { limits: { ...spreadLimits, store: new RedisSessionStore({ client }) } })
      return async () => { await client.quit() }
    }
  },
  'A+log': {
    label: 'A, logging at info',
    logging: true,
    setup: async (app, { oshara }) => {
      await registerPlugin(app, oshara)
      return nothing
    }
  },
  B: {
    label: 'B: undici Pool.request (floor)',
    setup: async (app, upstreams) => floor(app, upstreams, false)
  },
  'B+signals': {
    // What the two standard AbortSignals of a plugin request cost, measured in the same run as A and B.
    label: 'B + the two AbortSignals the plugin makes per request',
    setup: async (app, upstreams) => floor(app, upstreams, false, true)
  },
  'B+log': {
    // Fastify's two lines per request, as in A, and one line of B's own with the fields of A's success line.
    label: 'B, logging at info, one line of its own',
    logging: true,
    setup: async (app, upstreams) => floor(app, upstreams, true)
  },
  ...(BASELINE === undefined
    ? {}
    : {
      'A@baseline': {
        label: `A, as built at ${BASELINE_NAME}`,
        setup: async (app, { oshara }) => {
          await registerPlugin(app, oshara, {}, await baselinePlugin())
          return nothing
        }
      },
      'A+memory@baseline': {
        label: `A + limits, memory store, as built at ${BASELINE_NAME}`,
        setup: async (app, { oshara }) => {
          await registerPlugin(app, oshara, { limits: spreadLimits }, await baselinePlugin())
          return nothing
        }
      }
    } satisfies Record<string, Variant>),
  C: {
    label: 'C: fetch per request (seed)',
    setup: async (app, { oshara }) => {
      app.post(ROUTE, async (request) => {
        const session = await fetch(oshara + SESSION_PATH, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Origin: ORIGIN },
          body: upstreamBody(request)
        }).then((r) => r.json()) as UpstreamSession
        return replyOf(session)
      })
      return nothing
    }
  }
}
