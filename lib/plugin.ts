import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { OsharaSession } from './client/schemas.js'
import { failure, invalidOption } from './errors.js'
import { type IdempotencyClaim, type IdempotentMinting, readIdempotencyKey } from './idempotency/idempotency.js'
import { mint } from './mint.js'
import { loadTracing } from './observability/tracing.js'
import { normalizePluginOptions } from './options/normalize.js'
import { createRegistration, type Registration } from './registration.js'
import { hookList } from './route/route-options.js'
import { registerRoutes } from './route/routes.js'
import { checkAgentsOnReady } from './startup-check.js'
import { SessionCheck } from './tools/session-check.js'
import { registerTool, type ToolRuntime } from './tools/tool-route.js'
import type { CreateSessionInput, CreateSessionOptions, OsharaDecorator, OsharaVoiceOptions } from './types.js'

/** `fastify.oshara.createSession`: the upstream body as given, no request-based options. */
async function createSessionFor (registration: Registration, fastify: FastifyInstance, input: CreateSessionInput, options: CreateSessionOptions = {}): Promise<OsharaSession> {
  let claim: IdempotencyClaim | undefined
  try {
    const agent = input.agent ?? registration.agentSlug
    if (agent === undefined) throw failure('FST_OSHARA_INVALID_SESSION', 'no-agent')
    if (options.idempotencyKey !== undefined) {
      if (registration.idempotency === undefined) {
        throw invalidOption('idempotency', 'is not set, so createSession cannot honour options.idempotencyKey', 'set idempotency: true (or { ttlMs }), or leave idempotencyKey out')
      }
      const start = await registration.idempotency.begin('call', options.key ?? '', readIdempotencyKey(options.idempotencyKey) as string, input, fastify.log)
      if ('replay' in start) return JSON.parse(start.replay) as OsharaSession
      claim = start.claim
    }
    const session = await mint(registration, { ...input, agent }, { limiterKey: options.key, quotaKey: options.quotaKey, log: fastify.log, signal: options.signal, requestId: options.requestId, finish: undefined })
    if (claim !== undefined) await (registration.idempotency as IdempotentMinting).complete(claim, JSON.stringify(session), session.expires_in_seconds, fastify.log)
    return session
  } catch (error) {
    if (claim !== undefined) await (registration.idempotency as IdempotentMinting).abandon(claim, fastify.log)
    registration.stats.fail(error)
    throw error
  }
}

/** What `fastify.oshara.tool` needs, made once; undefined without `tools`. */
function toolRuntime (fastify: FastifyInstance, registration: Registration): ToolRuntime | undefined {
  if (registration.tools === undefined) return undefined
  return { config: registration.tools, sessionCheck: SessionCheck.create(registration.limiter, registration.tracking, fastify.log), stats: registration.stats, names: new Set() }
}

function decorate (fastify: FastifyInstance, registration: Registration, name: string): void {
  if (fastify.hasDecorator(name)) {
    throw invalidOption('decorator', `"${name}" is already taken (is the plugin registered twice?)`, "give each registration its own name, e.g. decorator: 'osharaSales', or decorator: false")
  }
  const tools = toolRuntime(fastify, registration)
  const decorator: OsharaDecorator = {
    client: registration.client,
    createSession: (input, options) => createSessionFor(registration, fastify, input, options),
    usage: (key) => registration.quota?.usage(key) ?? Promise.reject(invalidOption('quota', 'is not set, so there is no usage to read', 'set quota: { window, sessions | minutes | costUsd } to use fastify.oshara.usage()')),
    releaseSession: (sessionId, options) => registration.limiter?.releaseSession(sessionId, options?.key) ?? Promise.resolve(false),
    stats: () => registration.stats.snapshot(registration.client, registration.limiter, registration.tracker),
    tool: (toolName, definition) => {
      if (tools === undefined) throw invalidOption('tools', 'is not set, so there are no tool routes', "set tools: { secret } (see the README's Agent tools) to use fastify.oshara.tool()")
      registerTool(fastify, tools, toolName, definition as unknown as Parameters<typeof registerTool>[3])
    }
  }
  fastify.decorate(name, decorator)
}

function warnIfOpen (fastify: FastifyInstance, config: Registration): void {
  const { onRequest, preParsing, preValidation, preHandler } = config.routeOptions
  // An empty array is no hook: the route is as open as without the key.
  if (config.public || [onRequest, preParsing, preValidation, preHandler].some((hooks) => hookList(hooks).length > 0)) return
  fastify.log.warn({ path: config.path },
    `oshara: POST ${config.path} has no auth hook in routeOptions (onRequest, preValidation or preHandler): anyone who can reach it mints sessions on your Oshara plan. ` +
    'Add your auth hook, or set public: true if the route is open on purpose or your app authenticates in an app-wide hook.')
}

/** The slugs known at register: `agent` when a string, and `agents`. */
function staticSlugs (config: Registration): ReadonlySet<string> {
  const slugs = new Set(config.policy.agents)
  if (config.agentSlug !== undefined) slugs.add(config.agentSlug)
  return slugs
}

async function osharaVoicePlugin (fastify: FastifyInstance, options: OsharaVoiceOptions): Promise<void> {
  // Check every option, then build the services: nothing is made (no pool opened) for options that fail.
  const checked = normalizePluginOptions(options)
  // Nothing of OpenTelemetry is loaded unless asked for.
  const tracing = checked.telemetry?.tracing === true ? await loadTracing() : undefined
  const registration = createRegistration(checked, tracing, fastify.log)
  // The tracker finishes its lookups in flight before the client's pool closes.
  fastify.addHook('onClose', async () => {
    await registration.tracker?.close()
    if (registration.ownsClient) await registration.client.close()
  })
  const { tracker } = registration
  if (tracker !== undefined) fastify.addHook('onReady', async () => { tracker.start() })
  if (registration.checkOnReady) checkAgentsOnReady(fastify, registration.client, staticSlugs(registration))
  if (registration.decorator !== false) decorate(fastify, registration, registration.decorator)
  if (!registration.route) return
  warnIfOpen(fastify, registration)
  registerRoutes(fastify, registration)
}

/** `fastify.register(osharaVoice, options)`: the voice-token route, the decorator and the limiter. */
export const osharaVoice = fp(osharaVoicePlugin, { fastify: '5.x', name: 'fastify-oshara-voice' })
