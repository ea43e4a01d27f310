import type { FastifyInstance, preValidationHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { OsharaSessionNotFoundError, invalidOption } from './errors.js'
import { createSessionFor, handleTokenRequest } from './mint.js'
import { normalizePluginOptions, type PluginConfig } from './options.js'
import { refuseUnknownFields } from './route/browser-body.js'
import { SessionParamsSchema, TokenReplySchema } from './route/schemas.js'
import type { OsharaDecorator, OsharaVoiceOptions } from './types.js'

const DEFAULT_BODY_LIMIT = 16 * 1024

/** Route hooks given by the user come first (auth), ours after. */
function withOurs<T> (theirs: T | T[] | undefined, ours: T): T[] {
  return theirs === undefined ? [ours] : [...(Array.isArray(theirs) ? theirs : [theirs]), ours]
}

function registerRoutes (fastify: FastifyInstance, config: PluginConfig): void {
  const { schema: docs, preValidation, bodyLimit, ...hooks } = config.routeOptions
  const refuseFields: preValidationHookHandler = function refuseFields (request, _reply, done) {
    // The body is optional: a bare POST is an empty request, not a schema failure.
    if (request.body === undefined) request.body = {}
    else refuseUnknownFields(request.body, config.policy)
    done()
  }
  fastify.withTypeProvider<TypeBoxTypeProvider>().route({
    method: 'POST',
    url: config.path,
    ...hooks,
    bodyLimit: bodyLimit ?? DEFAULT_BODY_LIMIT,
    preValidation: withOurs(preValidation, refuseFields),
    schema: {
      ...docs,
      body: config.bodySchema,
      ...(config.response === undefined ? { response: { 200: TokenReplySchema } } : {})
    },
    handler: (request, reply) => handleTokenRequest(config, request, reply)
  })
  const { limiter } = config
  if (limiter === undefined) return
  fastify.withTypeProvider<TypeBoxTypeProvider>().route({
    method: 'DELETE',
    url: `${config.path}/:session_id`,
    ...hooks,
    ...(preValidation === undefined ? {} : { preValidation }),
    schema: { ...docs, params: SessionParamsSchema },
    handler: async (request, reply) => {
      const released = await limiter.releaseSession(request.params.session_id, await config.limitKey(request))
      if (!released) throw new OsharaSessionNotFoundError('No such active voice session.')
      return reply.code(204).send()
    }
  })
}

function decorate (fastify: FastifyInstance, config: PluginConfig, name: string): void {
  if (fastify.hasDecorator(name)) {
    throw invalidOption('decorator', `"${name}" is already taken (is the plugin registered twice?)`, "give each registration its own name, e.g. decorator: 'osharaSales', or decorator: false")
  }
  const decorator: OsharaDecorator = {
    client: config.client,
    createSession: (input, options) => createSessionFor(config, fastify.log, input, options),
    releaseSession: (sessionId, options) => config.limiter?.releaseSession(sessionId, options?.key) ?? Promise.resolve(false)
  }
  fastify.decorate(name, decorator)
}

async function osharaVoicePlugin (fastify: FastifyInstance, options: OsharaVoiceOptions): Promise<void> {
  const config = normalizePluginOptions(options)
  if (config.ownsClient) fastify.addHook('onClose', () => config.client.close())
  if (config.decorator !== false) decorate(fastify, config, config.decorator)
  if (config.route) registerRoutes(fastify, config)
}

/** `fastify.register(osharaVoice, options)`: the voice-token route, the decorator and the limiter. */
export const osharaVoice = fp(osharaVoicePlugin, { fastify: '5.x', name: 'fastify-oshara-voice' })
