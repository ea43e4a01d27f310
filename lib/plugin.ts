import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { OsharaSession } from './client/schemas.js'
import type { OsharaSessionSummary } from './client/summaries.js'
import { invalidOption, OsharaInvalidSessionError } from './errors.js'
import { type IdempotencyClaim, type IdempotentMinting, readIdempotencyKey } from './idempotency/idempotency.js'
import { type Minter, mint } from './mint.js'
import { SessionStats } from './observability/stats.js'
import { loadTracing } from './observability/tracing.js'
import { normalizePluginOptions, type PluginConfig } from './options/normalize.js'
import { registerRoutes } from './route/routes.js'
import { checkAgentsOnReady } from './startup-check.js'
import { SessionCheck } from './tools/session-check.js'
import { registerTool, type ToolRuntime } from './tools/tool-route.js'
import { SessionTracker } from './tracking/tracker.js'
import type { CreateSessionInput, CreateSessionOptions, OsharaDecorator, OsharaVoiceOptions } from './types.js'

/** `fastify.oshara.createSession`: the upstream body as given, no request-based options. */
async function createSessionFor (config: PluginConfig, minter: Minter, fastify: FastifyInstance, input: CreateSessionInput, options: CreateSessionOptions = {}): Promise<OsharaSession> {
  let claim: IdempotencyClaim | undefined
  try {
    const agent = input.agent ?? config.agentSlug
    if (agent === undefined) throw new OsharaInvalidSessionError('createSession needs input.agent: the plugin agent option is a function')
    if (options.idempotencyKey !== undefined) {
      if (config.idempotency === undefined) {
        throw invalidOption('idempotency', 'is not set, so createSession cannot honour options.idempotencyKey', 'set idempotency: true (or { ttlMs }), or leave idempotencyKey out')
      }
      const start = await config.idempotency.begin('call', options.key ?? '', readIdempotencyKey(options.idempotencyKey) as string, input, fastify.log)
      if ('replay' in start) return JSON.parse(start.replay) as OsharaSession
      claim = start.claim
    }
    const session = await mint(minter, { ...input, agent }, { limiterKey: options.key, quotaKey: options.quotaKey, log: fastify.log, signal: options.signal, requestId: options.requestId, finish: undefined })
    if (claim !== undefined) await (config.idempotency as IdempotentMinting).complete(claim, JSON.stringify(session), session.expires_in_seconds, fastify.log)
    return session
  } catch (error) {
    if (claim !== undefined) await (config.idempotency as IdempotentMinting).abandon(claim, fastify.log)
    minter.stats.fail(error)
    throw error
  }
}

/** What `fastify.oshara.tool` needs, made once; undefined without `tools`. */
function toolRuntime (fastify: FastifyInstance, config: PluginConfig, minter: Minter): ToolRuntime | undefined {
  if (config.tools === undefined) return undefined
  return { config: config.tools, sessionCheck: SessionCheck.create(config.limiter, config.tracking, fastify.log), stats: minter.stats, names: new Set() }
}

function decorate (fastify: FastifyInstance, config: PluginConfig, minter: Minter, name: string): void {
  if (fastify.hasDecorator(name)) {
    throw invalidOption('decorator', `"${name}" is already taken (is the plugin registered twice?)`, "give each registration its own name, e.g. decorator: 'osharaSales', or decorator: false")
  }
  const tools = toolRuntime(fastify, config, minter)
  const decorator: OsharaDecorator = {
    client: config.client,
    createSession: (input, options) => createSessionFor(config, minter, fastify, input, options),
    usage: (key) => config.quota?.usage(key) ?? Promise.reject(invalidOption('quota', 'is not set, so there is no usage to read', 'set quota: { window, sessions | minutes | costUsd } to use fastify.oshara.usage()')),
    releaseSession: (sessionId, options) => config.limiter?.releaseSession(sessionId, options?.key) ?? Promise.resolve(false),
    stats: () => minter.stats.snapshot(config.client, config.limiter, minter.tracker),
    tool: (toolName, definition) => {
      if (tools === undefined) throw invalidOption('tools', 'is not set, so there are no tool routes', "set tools: { secret } (see the README's Agent tools) to use fastify.oshara.tool()")
      registerTool(fastify, tools, toolName, definition as unknown as Parameters<typeof registerTool>[3])
    }
  }
  fastify.decorate(name, decorator)
}

function warnIfOpen (fastify: FastifyInstance, config: PluginConfig): void {
  const { onRequest, preParsing, preValidation, preHandler } = config.routeOptions
  if (config.public || onRequest !== undefined || preParsing !== undefined || preValidation !== undefined || preHandler !== undefined) return
  fastify.log.warn({ path: config.path },
    `oshara: POST ${config.path} has no auth hook in routeOptions (onRequest, preValidation or preHandler): anyone who can reach it mints sessions on your Oshara plan. ` +
    'Add your auth hook, or set public: true if the route is open on purpose or your app authenticates in an app-wide hook.')
}

/** The session tracker, when tracking is on. */
function tracking (fastify: FastifyInstance, config: PluginConfig): Pick<Minter, 'tracker' | 'bindTracking'> {
  if (config.tracking === undefined) return { tracker: undefined, bindTracking: undefined }
  const { quota } = config
  // An ended session's minutes and cost count against the key that held it.
  const onEnded = quota?.needsTracking === true
    ? async (key: string | undefined, summary: OsharaSessionSummary) => { if (key !== undefined) await quota.record(key, summary, fastify.log) }
    : undefined
  return {
    tracker: new SessionTracker(config.tracking, config.client, fastify.log, onEnded),
    bindTracking: Object.freeze({ firstCheckMs: config.tracking.firstCheckMs, holdMs: config.tracking.maxTrackMs })
  }
}

/** The slugs known at register: `agent` when a string, and `agents`. */
function staticSlugs (config: PluginConfig): ReadonlySet<string> {
  const slugs = new Set(config.policy.agents)
  if (config.agentSlug !== undefined) slugs.add(config.agentSlug)
  return slugs
}

async function osharaVoicePlugin (fastify: FastifyInstance, options: OsharaVoiceOptions): Promise<void> {
  const config = normalizePluginOptions(options)
  // Nothing of OpenTelemetry is loaded unless asked for.
  const tracing = config.telemetry?.tracing === true ? await loadTracing() : undefined
  const minter: Minter = { client: config.client, limiter: config.limiter, ...tracking(fastify, config), stats: new SessionStats(), tracing, signer: config.tools?.signer }
  // The tracker finishes its lookups in flight before the client's pool closes.
  fastify.addHook('onClose', async () => {
    await minter.tracker?.close()
    if (config.ownsClient) await config.client.close()
  })
  if (config.checkOnReady) checkAgentsOnReady(fastify, config.client, staticSlugs(config))
  if (config.decorator !== false) decorate(fastify, config, minter, config.decorator)
  if (!config.route) return
  warnIfOpen(fastify, config)
  registerRoutes(fastify, config, minter)
}

/** `fastify.register(osharaVoice, options)`: the voice-token route, the decorator and the limiter. */
export const osharaVoice = fp(osharaVoicePlugin, { fastify: '5.x', name: 'fastify-oshara-voice' })
