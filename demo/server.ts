/**
 * The fastify-oshara-voice demo: `npm start`, then open http://127.0.0.1:3000.
 *
 * One Fastify app with the plugin, a page (demo/public/) that starts a call through
 * livekit-client, and, unless OSHARA_AGENT and OSHARA_ORIGIN are set, a local Oshara
 * emulator to mint the sessions. The emulator mints real LiveKit tokens but runs no media
 * server, so with it the page gets a session and then shows that the media connection fails.
 *
 * The session lifecycle: the plugin tracks every session it mints until Oshara reports it over,
 * `onSessionEnd` keeps the user's last calls for the page's Recent calls panel
 * (`GET /demo/recent-calls`), and a user at the limit of one call has their sessions looked up
 * before a 429. With the emulator, `POST /demo/sessions/:sessionId/end` lets the page end its
 * call the way Oshara would: the agent hangs up, or the tab crashed.
 *
 * Voice minutes: the user has a budget of minutes a day (`quota`), counted when a call ends.
 * `GET /demo/usage` tells the page what is left; once it is used up, POST /voice-token answers
 * 429 FST_OSHARA_QUOTA_EXCEEDED with a message safe to show and Retry-After until midnight UTC.
 *
 * Agent tools: every session carries a signature of its metadata (`tools`), and the app serves
 * the tool `lookup_order` (POST /oshara/tools/lookup_order) for the user the session was minted
 * for. With the emulator, `POST /demo/sessions/:sessionId/lookup-order` makes the emulator call it
 * as Oshara's agent would during the call, and `POST /demo/forged-tool-call` mints a session
 * straight at the emulator claiming to be another user (Origin is just a header) and calls the
 * tool with it: the app refuses it (403 FST_OSHARA_TOOL_FORBIDDEN).
 *
 * Environment:
 *   PORT, HOST                  where the demo listens (default 3000, 127.0.0.1)
 *   OSHARA_AGENT, OSHARA_ORIGIN talk to the real Oshara with this character slug and Origin
 *                               (the Origin must be on the character's allowed_origins)
 *   OSHARA_BASE_URL             default https://api.oshara.ai
 *   OSHARA_API_KEY              sent as X-API-Key upstream, never to the browser; with the real
 *                               Oshara, Recent calls and voice minutes need it (the emulator gets
 *                               a key of its own)
 *   DEMO_MINUTES                the user's voice minutes a day (default 10)
 *   OSHARA_TOOLS_SECRET         the tool secret (the X-Oshara-Secret of the tool on the character);
 *                               default: a random one per run, which only the emulator knows
 *   OSHARA_TOOLS_SIGNING_KEY    the key that signs session metadata (default: a random one per run)
 *   LOG_LEVEL                   default info
 */
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyStatic from '@fastify/static'
import { Type } from '@sinclair/typebox'
// In your app: import osharaVoice from 'fastify-oshara-voice'
import osharaVoice, { OsharaToolRefusedError, type OsharaQuotaUsage, type OsharaTrackingOptions, type OsharaVoiceOwnClientOptions } from '../lib/index.js'
import { createOsharaEmulator, type OsharaEmulator } from '../lib/emulator.js'
import { DemoCalls } from './calls.js'

/** The user every request is "logged in" as. */
export interface DemoUser {
  id: string
  name: string
  email: string
  plan: string
}

/**
 * FAKE LOGIN. There is no password, cookie or session here: every request is treated as
 * this one user, so that the page works without a sign-in step. In your app, your own auth
 * (a session cookie, a JWT, ...) puts the real user on the request instead.
 */
export const DEMO_USER: Readonly<DemoUser> = Object.freeze({
  id: 'demo-user-1',
  name: 'Ada Demo',
  email: 'ada@example.com',
  plan: 'pro'
})

export const DEMO_AGENT = 'support-bot'

/** One order, as the tool `lookup_order` answers it. */
export interface DemoOrder {
  order_id: string
  item: string
  status: string
  eta: string
}

/** The demo's orders by user id: the data the agent's tool may read for the caller only. */
export const DEMO_ORDERS: Readonly<Record<string, readonly DemoOrder[]>> = Object.freeze({
  [DEMO_USER.id]: [{ order_id: 'A-1001', item: 'Noise-cancelling headset', status: 'shipped', eta: 'Thursday' }],
  'demo-user-2': [{ order_id: 'B-2002', item: 'Engagement ring', status: 'packed', eta: 'Friday' }]
})

/** Whom the forged call claims to be. */
const FORGED_USER = { user_id: 'demo-user-2', user_name: 'Someone Else' }

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the demo's fake login; null means "not logged in". */
    demoUser: DemoUser | null
  }
}

export interface DemoOptions {
  /** Default 3000; 0 picks a free port. */
  port?: number
  /** Default 127.0.0.1. */
  host?: string
  /** Where OSHARA_* settings are read from. Default `process.env`. */
  env?: Record<string, string | undefined>
  /** Fastify's JSON logs on stdout. Default false (the script turns them on). */
  logger?: boolean
}

/** What `GET /demo/usage` answers: the user's voice minutes today, or `{ quota: false }` when they are not counted. */
export type DemoUsage =
  | { quota: true, window: 'day', budget: { minutes: number }, usage: OsharaQuotaUsage }
  | { quota: false }

export interface Demo {
  /** The page, e.g. http://127.0.0.1:3000 */
  url: string
  /** Which Oshara answers, in words. */
  description: string
  app: FastifyInstance
  /** The local Oshara, or undefined when talking to the real one. */
  emulator: OsharaEmulator | undefined
  /** Closes the app, then the emulator. Safe to call twice. */
  close (): Promise<void>
}

const here = dirname(fileURLToPath(import.meta.url))
/** livekit-client's dist/ folder (its package "require" entry lives there). */
const livekitDist = dirname(createRequire(import.meta.url).resolve('livekit-client'))
const VENDOR_FILES = new Set(['/livekit-client.esm.mjs', '/livekit-client.esm.mjs.map'])

/** A free loopback port, so the demo knows its own origin before it listens (port 0). */
async function freePort (host: string): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, resolve)
  })
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

interface Upstream {
  options: Pick<OsharaVoiceOwnClientOptions, 'origin' | 'agent' | 'baseUrl' | 'apiKey'>
  emulator: OsharaEmulator | undefined
  description: string
  /** Session tracking, which needs an API key; undefined without one. */
  tracking: OsharaTrackingOptions | undefined
}

/**
 * How often the plugin asks Oshara whether a call is over. Against the emulator: soon and often,
 * so that an ended call reaches Recent calls within seconds. Against the real Oshara: a little
 * gentler. (The plugin's defaults, 15 s then up to 2 min, suit an app.)
 */
const EMULATOR_TRACKING: OsharaTrackingOptions = { firstCheckMs: 1000, maxCheckIntervalMs: 5000 }
const OSHARA_TRACKING: OsharaTrackingOptions = { firstCheckMs: 5000, maxCheckIntervalMs: 30_000 }

/** Why the demo's emulator controls may end a call (EmulatorEndReason). */
const END_REASONS = ['agent_hangup', 'tab_crashed'] as const
type EndReason = typeof END_REASONS[number]

/** The real Oshara when OSHARA_AGENT and OSHARA_ORIGIN are set, else a fresh emulator that allows `origin`. */
async function chooseUpstream (env: Record<string, string | undefined>, origin: string): Promise<Upstream> {
  const { OSHARA_AGENT: agent, OSHARA_ORIGIN: realOrigin, OSHARA_BASE_URL: baseUrl, OSHARA_API_KEY: apiKey } = env
  if (agent !== undefined && agent !== '' && realOrigin !== undefined && realOrigin !== '') {
    const withKey = apiKey !== undefined && apiKey !== ''
    return {
      options: {
        origin: realOrigin,
        agent,
        ...(baseUrl !== undefined && baseUrl !== '' ? { baseUrl } : {}),
        ...(withKey ? { apiKey } : {})
      },
      emulator: undefined,
      description: `the real Oshara at ${baseUrl !== undefined && baseUrl !== '' ? baseUrl : 'https://api.oshara.ai'} (agent ${agent}, Origin ${realOrigin}${withKey ? ', with API key' : ''})`,
      tracking: withKey ? OSHARA_TRACKING : undefined
    }
  }
  if ((agent ?? '') !== '' || (realOrigin ?? '') !== '') {
    throw new Error('Set both OSHARA_AGENT and OSHARA_ORIGIN to use the real Oshara (or neither, for the local emulator).')
  }
  // The emulator's billing endpoints (what session tracking reads) take any key it lists.
  const emulatorKey = `sk_demo_${randomBytes(12).toString('hex')}`
  const emulator = await createOsharaEmulator({
    apiKeys: [emulatorKey],
    characters: [{
      slug: DEMO_AGENT,
      allowed_origins: [origin],
      system_prompt: 'You are a friendly support agent for the fastify-oshara-voice demo.',
      greeting: 'Hi Ada! How can I help?'
    }]
  })
  return {
    options: { origin, agent: DEMO_AGENT, baseUrl: emulator.url, apiKey: emulatorKey },
    emulator,
    description: `the local Oshara emulator at ${emulator.url} (it mints real tokens but runs no LiveKit media server)`,
    tracking: EMULATOR_TRACKING
  }
}

/**
 * The emulator runs no media server, so it cannot see the page leave the room. When the page
 * frees its slot (End call, or the tab was closed: `DELETE /voice-token/:session_id` answered
 * 204), the demo ends the emulator's session as Oshara ends a real one when its participant
 * leaves; the call then reaches Recent calls like any other.
 */
function leaveEmulatedRoom (emulator: OsharaEmulator, calls: DemoCalls) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (request.method !== 'DELETE' || reply.statusCode !== 204 || request.demoUser === null) return
    const params = request.params as { session_id?: string, '*'?: string }
    const sessionId = params.session_id ?? params['*']
    if (sessionId !== undefined && calls.take(request.demoUser.id, sessionId)) emulator.endSession(sessionId, { reason: 'client_left' })
  }
}

/** The words for a port another process holds, with how to pick another one (PORT). */
function portInUse (cause: unknown, host: string, port: number): Error {
  const other = port >= 65535 ? 3001 : port + 1
  return Object.assign(new Error(
    `port ${port} on ${host} is already in use (is another demo or app running there?). ` +
    `Pick another port with PORT, e.g. PORT=${other} npm start`, { cause }), { code: 'EADDRINUSE' })
}

function nonEmpty (value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

/** PORT as a port number, or an error saying what PORT takes. */
function portFrom (value: string | undefined): number {
  if (value === undefined || value === '') return 3000
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT must be a port number from 0 to 65535 (got ${JSON.stringify(value)}), e.g. PORT=3001 npm start`)
  }
  return port
}

/** DEMO_MINUTES as a number of minutes (default 10), or an error saying what it takes. */
function minutesFrom (value: string | undefined): number {
  if (value === undefined || value === '') return 10
  const minutes = Number(value)
  if (!Number.isFinite(minutes) || minutes < 0) {
    throw new Error(`DEMO_MINUTES must be a number of minutes >= 0 (got ${JSON.stringify(value)}), e.g. DEMO_MINUTES=30 npm start`)
  }
  return minutes
}

/** Builds and starts the demo; tests call it with `{ port: 0 }`. */
export async function startDemo (options: DemoOptions = {}): Promise<Demo> {
  const host = options.host ?? '127.0.0.1'
  const requested = options.port ?? 3000
  const port = requested === 0 ? await freePort(host) : requested
  // The page's own origin (a wildcard host is reached on loopback). With the emulator, this is
  // the Origin the plugin sends and the character allows.
  const pageHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
  const origin = `http://${pageHost.includes(':') ? `[${pageHost}]` : pageHost}:${port}`
  const env = options.env ?? process.env
  const minutesPerDay = minutesFrom(env.DEMO_MINUTES)
  const upstream = await chooseUpstream(env, origin)

  const app = Fastify({
    logger: options.logger === true ? { level: env.LOG_LEVEL ?? 'info' } : false
  })
  let closed: Promise<void> | undefined
  const close = (): Promise<void> => {
    closed ??= app.close().finally(() => upstream.emulator?.close())
    return closed
  }
  try {
    // The fake login: every request is Ada. Replace this hook with your real auth.
    app.decorateRequest('demoUser', null)
    app.addHook('onRequest', async (request) => {
      request.demoUser = { ...DEMO_USER }
    })

    /** What real auth would do on the voice routes: no user, no session. */
    async function requireUser (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
      if (request.demoUser === null) return reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'Log in first.' })
    }
    const userOf = (request: FastifyRequest): DemoUser => request.demoUser as DemoUser
    const { emulator, tracking } = upstream
    const calls = new DemoCalls()
    // The tool's shared secret (the X-Oshara-Secret on the character) and the metadata signing key.
    const toolsSecret = nonEmpty(env.OSHARA_TOOLS_SECRET) ?? randomBytes(24).toString('base64url')
    const signingKey = nonEmpty(env.OSHARA_TOOLS_SIGNING_KEY) ?? randomBytes(32).toString('base64url')

    await app.register(osharaVoice, {
      ...upstream.options,
      routeOptions: {
        preHandler: requireUser,
        ...(emulator === undefined ? {} : { onResponse: leaveEmulatedRoom(emulator, calls) })
      },
      // The metadata extractor: who is calling, passed to the agent as session metadata.
      metadata: (request) => {
        const user = userOf(request)
        return { user_id: user.id, user_name: user.name, user_email: user.email, plan: user.plan }
      },
      // Agent tools: every session carries a signature of its metadata; the tool routes serve only those.
      tools: { secret: toolsSecret, signingKey },
      // Remembers whose session it is, so that the emulator controls end only the user's own calls.
      ...(emulator === undefined ? {} : { onSession: (request, session) => { calls.minted(userOf(request).id, session.session_id) } }),
      // One active call per user, so a second Start (e.g. in another tab) shows the 429. With
      // tracking, a slot is held until Oshara reports the call over, and a tab that vanished
      // without ending its call blocks nothing: at the next Start the plugin finds its call over.
      // Without tracking (the real Oshara without OSHARA_API_KEY), holdMs: a slot counts for 10
      // minutes at most (not the token's hour), so such a tab blocks new calls only briefly.
      limits: {
        concurrency: 1,
        key: (request) => userOf(request).id,
        ...(tracking === undefined ? { holdMs: 10 * 60 * 1000 } : {})
      },
      // Each ended call, with Oshara's summary (duration, cost, transcript): kept for Recent calls.
      // And the user's voice minutes a day (DEMO_MINUTES), counted from the same summaries when a
      // call ends: once they are used up, Start gets a 429 until midnight UTC. The quota key is
      // the limiter's (the user id), so quota.key stays out.
      ...(tracking === undefined
        ? {}
        : {
            tracking,
            quota: { window: 'day', minutes: minutesPerDay },
            onSessionEnd: (summary, { sessionId, key }) => {
              app.log.info({ session_id: sessionId, seconds: summary.session_duration_seconds, cost: summary.estimated_cost_usd }, 'demo: call ended')
              if (key !== undefined) calls.ended(key, sessionId, summary)
            }
          })
    })

    // The agent's tool: the caller's order, for the user named in the signed session metadata only.
    // Register it on the character as an HTTP tool: config.url {origin}/oshara/tools/lookup_order,
    // config.headers { "X-Oshara-Secret": OSHARA_TOOLS_SECRET }.
    app.oshara.tool('lookup_order', {
      args: Type.Object({ order_id: Type.String({ minLength: 1, maxLength: 20 }) }, { additionalProperties: false }),
      handler: async ({ order_id: orderId }, { metadata }) => {
        const order = DEMO_ORDERS[String(metadata.user_id)]?.find((candidate) => candidate.order_id === orderId)
        if (order === undefined) throw new OsharaToolRefusedError(`There is no order ${orderId} for this caller.`)
        return { ...order, customer: metadata.user_name }
      }
    })

    // What the page shows in its header (the fake user and which Oshara is answering).
    app.get('/api/demo', async (request) => ({
      user: userOf(request),
      agent: upstream.options.agent,
      upstream: emulator === undefined ? 'oshara' : 'emulator'
    }))

    // The page's Recent calls panel: the user's last ended calls. Without tracking there are none.
    // The page polls it every couple of seconds: it logs only problems, like the static files.
    app.get('/demo/recent-calls', { preHandler: requireUser, logLevel: 'warn' }, async (request, reply) => {
      reply.header('cache-control', 'no-store')
      return { tracking: tracking !== undefined, calls: calls.recent(userOf(request).id) }
    })

    // The page's voice minutes line: what the user used today (fastify.oshara.usage) and their
    // budget. Polled with Recent calls, so it logs only problems too. Without tracking (the real
    // Oshara without OSHARA_API_KEY) minutes are not counted.
    app.get('/demo/usage', { preHandler: requireUser, logLevel: 'warn' }, async (request, reply): Promise<DemoUsage> => {
      reply.header('cache-control', 'no-store')
      if (tracking === undefined) return { quota: false }
      return { quota: true, window: 'day', budget: { minutes: minutesPerDay }, usage: await app.oshara.usage(userOf(request).id) }
    })

    // With the emulator only: end the user's call as Oshara would, because the agent hung up or
    // because the tab crashed (Oshara notices the participant gone). Only a call minted for this
    // user and still open; anything else is 404.
    if (emulator !== undefined) {
      app.post('/demo/sessions/:sessionId/end', {
        preHandler: requireUser,
        schema: {
          params: { type: 'object', properties: { sessionId: { type: 'string', minLength: 1, maxLength: 100 } }, required: ['sessionId'] },
          body: { type: 'object', properties: { reason: { type: 'string', enum: END_REASONS } }, required: ['reason'], additionalProperties: false }
        }
      }, async (request, reply) => {
        const { sessionId } = request.params as { sessionId: string }
        const { reason } = request.body as { reason: EndReason }
        if (!calls.take(userOf(request).id, sessionId) || !emulator.endSession(sessionId, { reason })) {
          return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'No such call of yours in progress.' })
        }
        request.log.info({ session_id: sessionId, reason }, 'demo: the emulator ended the call')
        return { session_id: sessionId, end_reason: reason }
      })

      // The agent "calls" the tool during the user's call: the emulator POSTs as Oshara's worker
      // does, with the session's (signed) metadata and the tool's secret header.
      const toolUrl = `${origin}/oshara/tools/lookup_order`
      const toolHeaders = { 'x-oshara-secret': toolsSecret }
      app.post('/demo/sessions/:sessionId/lookup-order', {
        preHandler: requireUser,
        schema: { params: { type: 'object', properties: { sessionId: { type: 'string', minLength: 1, maxLength: 100 } }, required: ['sessionId'] } }
      }, async (request, reply) => {
        const { sessionId } = request.params as { sessionId: string }
        if (!calls.isOpen(userOf(request).id, sessionId)) {
          return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'No such call of yours in progress.' })
        }
        const args = { order_id: DEMO_ORDERS[userOf(request).id]?.[0]?.order_id ?? 'A-1001' }
        return { tool: 'lookup_order', args, ...await emulator.callTool(sessionId, { url: toolUrl, args, headers: toolHeaders }) }
      })

      // A forged call: a session minted straight at Oshara, around this app, claiming to be another
      // user (Oshara checks only Origin, which outside a browser is just a header). Oshara's worker
      // would add the right secret; the app still refuses it, since nothing it minted signed it.
      app.post('/demo/forged-tool-call', { preHandler: requireUser }, async () => {
        const minted = await fetch(`${emulator.url}/api/agents/agent-session/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', origin },
          body: JSON.stringify({ agent: DEMO_AGENT, metadata: FORGED_USER }),
          signal: AbortSignal.timeout(5000)
        })
        const forged = await minted.json() as { session_id: string }
        const args = { order_id: DEMO_ORDERS[FORGED_USER.user_id]?.[0]?.order_id ?? 'B-2002' }
        try {
          return { tool: 'lookup_order', args, claimed: FORGED_USER, ...await emulator.callTool(forged.session_id, { url: toolUrl, args, headers: toolHeaders }) }
        } finally {
          emulator.endSession(forged.session_id, { reason: 'client_left' })
        }
      })
    }

    // Static files log only problems (logLevel), so the terminal shows the voice routes.
    await app.register(fastifyStatic, { root: join(here, 'public'), prefix: '/', index: 'index.html', logLevel: 'warn' })
    // livekit-client's browser build from node_modules (no CDN): only the module and its source map.
    await app.register(fastifyStatic, {
      root: livekitDist,
      prefix: '/vendor/',
      decorateReply: false,
      index: false,
      logLevel: 'warn',
      allowedPath: (pathName) => VENDOR_FILES.has(pathName)
    })

    await app.listen({ port, host })
  } catch (error) {
    await close()
    throw (error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? portInUse(error, host, port) : error
  }
  return { url: origin, app, emulator: upstream.emulator, close, description: upstream.description }
}

const runDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)

if (runDirectly) {
  try {
    const demo = await startDemo({
      port: portFrom(process.env.PORT),
      host: process.env.HOST ?? '127.0.0.1',
      env: process.env,
      logger: true
    })
    console.log(`\n  Oshara voice demo: ${demo.url}\n  Sessions come from ${demo.description}.\n  Logged in (fake login) as ${DEMO_USER.name} <${DEMO_USER.email}>. Ctrl-C to stop.\n`)
    const stop = (signal: NodeJS.Signals): void => {
      console.log(`\n  ${signal}: closing the demo...`)
      demo.close().then(() => process.exit(0), (error: unknown) => {
        console.error(error)
        process.exit(1)
      })
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  } catch (error) {
    console.error(`The demo did not start: ${(error as Error).message}`)
    process.exitCode = 1
  }
}
