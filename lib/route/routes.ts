import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaCompiler, onRequestHookHandler, preValidationHookHandler } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { callbackFailure } from '../app-callback.js'
import type { OsharaSession, SessionRequest } from '../client/schemas.js'
import { failure, OsharaError } from '../errors.js'
import { FAILURES, type FailureRow } from '../failures.js'
import { type IdempotencyClaim, type IdempotentMinting, readIdempotencyKey } from '../idempotency/idempotency.js'
import { type MintOptions, mint } from '../mint.js'
import type { Registration } from '../registration.js'
import { readBrowserChoices, refuseUnknownFields } from './browser-body.js'
import { isRefusedCrossSite } from './cross-site.js'
import { disconnectSignal } from './disconnect.js'
import { hookList } from './route-options.js'
import { SessionParamsSchema, TokenReplySchema, WildcardParamsSchema } from './route-schemas.js'

/** TypeBox validates without coercion, whatever the app's Ajv settings: wrong types are a 400. */
const validateWithoutCoercion = TypeBoxValidatorCompiler as FastifySchemaCompiler<unknown>

/**
 * `Content-Type: application/json` with no body is what many fetch wrappers send. Fastify's
 * JSON parser refuses it; in the plugin's own context (its two routes only), an empty body is
 * simply no body, and any other body is parsed by Fastify's JSON parser with the app's
 * prototype-poisoning settings.
 */
function acceptEmptyJson (child: FastifyInstance): void {
  // Fastify fills both settings in with their defaults.
  const { onProtoPoisoning, onConstructorPoisoning } = child.initialConfig as Required<FastifyInstance['initialConfig']>
  const parseJson = child.getDefaultJsonParser(onProtoPoisoning, onConstructorPoisoning)
  child.removeContentTypeParser('application/json')
  child.addContentTypeParser<string>('application/json', { parseAs: 'string' }, function parseJsonOrNothing (request, body, done) {
    if (body.length === 0) done(null, undefined)
    else parseJson(request, body, done)
  })
}

function refuseCrossSite (allowedOrigins: ReadonlySet<string>): onRequestHookHandler {
  return function refuseCrossSite (request, _reply, done) {
    if (!isRefusedCrossSite(request, allowedOrigins)) return done()
    request.log.info({ origin: request.headers.origin, secFetchSite: request.headers['sec-fetch-site'] }, 'oshara: cross-site request refused (allowedOrigins)')
    done(failure('FST_OSHARA_ORIGIN_NOT_ALLOWED', 'cross-site'))
  }
}

/**
 * The `POST {path}` and `DELETE {path}/:session_id` routes, in an encapsulated context of their
 * own: its JSON parser takes an empty body (see `acceptEmptyJson`) without touching the app's
 * other routes. The app's `routeOptions` hooks run as given, each in its stage: ours come first
 * in `onRequest` (the cross-site check) and last in `preValidation` (the
 * field check, after a hook of the app's has had the chance to clean the body).
 */
export function registerRoutes (fastify: FastifyInstance, config: Registration): void {
  fastify.register(async function osharaRoutes (child) {
    acceptEmptyJson(child)
    addRoutes(child, config)
  })
}

function addRoutes (child: FastifyInstance, config: Registration): void {
  const { schema: docs, onRequest, preValidation, bodyLimit, ...hooks } = config.routeOptions
  const crossSite = refuseCrossSite(config.allowedOrigins)
  const refuseFields: preValidationHookHandler = function refuseFields (request, _reply, done) {
    // The body is optional: a bare POST is an empty request, not a schema failure.
    if (request.body === undefined) request.body = {}
    else refuseUnknownFields(request.body, config.policy)
    done()
  }
  const typed = child.withTypeProvider<TypeBoxTypeProvider>()
  typed.route({
    method: 'POST',
    url: config.path,
    ...hooks,
    onRequest: [crossSite, ...hookList(onRequest)],
    preValidation: [...hookList(preValidation), refuseFields],
    bodyLimit,
    validatorCompiler: validateWithoutCoercion,
    schema: {
      ...docs,
      body: config.bodySchema,
      ...(config.response === undefined ? { response: { 200: TokenReplySchema } } : {})
    },
    handler: (request, reply) => handleTokenRequest(config, request, reply)
  })
  if (config.limiter === undefined) return
  const release = (request: FastifyRequest, reply: FastifyReply): Promise<void> => handleRelease(config, request, reply)
  const deleteOptions = {
    ...hooks,
    onRequest: [crossSite, ...hookList(onRequest)],
    ...(preValidation === undefined ? {} : { preValidation }),
    validatorCompiler: validateWithoutCoercion
  }
  typed.route({ method: 'DELETE', url: `${config.path}/:session_id`, ...deleteOptions, schema: { ...docs, params: SessionParamsSchema }, handler: release })
  // Fastify's router refuses parameters over `maxParamLength` (100): longer session ids land here.
  typed.route({ method: 'DELETE', url: `${config.path}/*`, ...deleteOptions, schema: { ...docs, hide: true, params: WildcardParamsSchema }, handler: release })
}

async function handleRelease (config: Pick<Registration, 'limiter' | 'limitKey'>, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const params = request.params as { session_id?: string, '*'?: string }
  const key = await keyOf(config.limitKey, 'limits.key', request)
  const released = await (config.limiter as NonNullable<Registration['limiter']>).releaseSession(params.session_id ?? params['*'] as string, key)
  if (!released) throw failure('FST_OSHARA_SESSION_NOT_FOUND', 'not-held')
  return reply.code(204).send()
}

/**
 * The key of `request` (`limits.key` or `quota.key`). Anything but a non-empty string (a
 * `request.user?.id` with nobody logged in) is a failure of the callback: taken as "no key", it
 * would switch the limiter off and let `DELETE` free any key's session.
 */
async function keyOf (key: Registration['limitKey'], option: string, request: FastifyRequest): Promise<string> {
  let value: unknown
  try {
    value = await key(request)
  } catch (error) {
    throw callbackFailure(option, error, request.log)
  }
  if (typeof value === 'string' && value !== '') return value
  // Named by its type only: a key names a user.
  const got = value === undefined || value === null ? String(value) : value === '' ? 'an empty string' : `a ${typeof value}`
  throw callbackFailure(option, new TypeError(`${option} must return a non-empty string, got ${got}`), request.log)
}

/** Builds the upstream body for a browser request: agent, browser fields, server overrides, metadata. */
async function buildDraft (config: Pick<Registration, 'policy' | 'agentSlug' | 'resolveAgent' | 'session' | 'metadata' | 'beforeSession'>, request: FastifyRequest): Promise<SessionRequest> {
  const choices = readBrowserChoices(request.body as Parameters<typeof readBrowserChoices>[0], config.policy)
  let step = 'agent'
  try {
    const agent = choices.agent ?? config.agentSlug ?? await (config.resolveAgent as NonNullable<Registration['resolveAgent']>)(request)
    const draft: SessionRequest = { agent, ...choices.fields }
    step = 'session'
    if (config.session !== undefined) Object.assign(draft, await config.session(request))
    step = 'metadata'
    if (config.metadata !== undefined) draft.metadata = await config.metadata(request)
    step = 'beforeSession'
    if (config.beforeSession !== undefined) await config.beforeSession(request, draft)
    return draft
  } catch (error) {
    throw callbackFailure(step, error, request.log)
  }
}

function defaultReply (session: OsharaSession): Record<string, unknown> {
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

async function reportFailure (config: Pick<Registration, 'onSessionError'>, request: FastifyRequest, reply: FastifyReply, error: unknown): Promise<void> {
  if (error instanceof OsharaError) {
    const row: FailureRow = FAILURES[error.code]
    if (error.retryAfterMs !== undefined && row.retryAfter !== false) {
      reply.header('retry-after', Math.max(1, Math.ceil(error.retryAfterMs / 1000)))
    }
    const fields = { code: error.code, upstreamStatus: error.upstreamStatus, requestId: error.requestId, detail: error.detail, fix: error.fix }
    if (row.fix !== undefined) {
      request.log.error(fields, `oshara: upstream refused the session: ${error.fix ?? row.fix}`)
    } else if (error.fix !== undefined && error.code === 'FST_OSHARA_UNAVAILABLE') {
      // Unreachable: a wrong baseUrl, or an outage; Fastify logs the 503 itself, this line says what to check.
      request.log.warn(fields, `oshara: the voice service could not be reached: ${error.fix}`)
    }
  }
  try {
    await config.onSessionError?.(request, error as Error)
  } catch (hookError) {
    request.log.error({ err: hookError }, 'oshara: onSessionError hook threw; the reply is unchanged')
  }
}

/** The `POST {path}` handler. */
async function handleTokenRequest (config: Registration, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  let claim: IdempotencyClaim | undefined
  try {
    let key: string | undefined
    if (config.idempotency !== undefined) {
      const idempotencyKey = readIdempotencyKey(request.headers['idempotency-key'])
      if (idempotencyKey !== undefined) {
        // Before anything else runs or counts: a repeat is answered from the store.
        key = config.limiter === undefined ? undefined : await keyOf(config.limitKey, 'limits.key', request)
        const start = await config.idempotency.begin('route', key ?? request.ip, idempotencyKey, request.body, request.log)
        if ('replay' in start) return await replay(reply, start.replay)
        claim = start.claim
      }
    }
    const draft = await buildDraft(config, request)
    if (key === undefined && config.limiter !== undefined) key = await keyOf(config.limitKey, 'limits.key', request)
    const { quota } = config
    // The quota key defaults to the limiter's: one call of the app's key function then serves both.
    const quotaKey = quota === undefined ? undefined : key !== undefined && config.quotaKey === config.limitKey ? key : await keyOf(config.quotaKey, 'quota.key', request)
    const ticket = quota === undefined ? undefined : await quota.take(request, quotaKey as string)
    let body
    let expiresInSeconds = 0
    try {
      const options: MintOptions<OsharaSession> = {
        limiterKey: key,
        quotaKey,
        log: request.log,
        signal: disconnectSignal(reply),
        // One id links the app's log line, the span and Oshara's side.
        requestId: String(request.id),
        finish: undefined
      }
      if (claim !== undefined) {
        body = await mint(config, draft, { ...options, finish: (session) => { expiresInSeconds = session.expires_in_seconds; return finish(config, request, session) } })
      } else {
        body = config.onSession === undefined && config.response === undefined
          ? defaultReply(await mint(config, draft, options))
          : await mint(config, draft, { ...options, finish: (session) => finish(config, request, session) })
      }
    } catch (error) {
      if (ticket !== undefined) await quota?.giveBack(ticket, request.log)
      throw error
    }
    if (ticket !== undefined) quota?.sendRemaining(reply, ticket)
    reply.header('cache-control', 'no-store')
    if (claim === undefined) return body
    // The reply is sent as stored, so that a replay is the same bytes.
    const payload = JSON.stringify(body)
    await (config.idempotency as IdempotentMinting).complete(claim, payload, expiresInSeconds, request.log)
    return await reply.type('application/json; charset=utf-8').send(payload)
  } catch (error) {
    if (claim !== undefined) await (config.idempotency as IdempotentMinting).abandon(claim, request.log)
    config.stats.fail(error)
    await reportFailure(config, request, reply, error)
    throw error
  }
}

/** The stored reply of an idempotent request, again. */
async function replay (reply: FastifyReply, payload: string): Promise<FastifyReply> {
  reply.header('cache-control', 'no-store')
  reply.header('idempotent-replayed', 'true')
  return await reply.type('application/json; charset=utf-8').send(payload)
}

/** `onSession`, then the reply body (`response`); a throw here, or a body that is no JSON object, frees the session's slot. */
async function finish (config: Pick<Registration, 'onSession' | 'response'>, request: FastifyRequest, session: OsharaSession): Promise<Record<string, unknown>> {
  let step = 'onSession'
  try {
    if (config.onSession !== undefined) await config.onSession(request, session)
    step = 'response'
    return config.response === undefined ? defaultReply(session) : checkedReply(config.response(session, request))
  } catch (error) {
    throw callbackFailure(step, error, request.log)
  }
}

/**
 * What `response` returned, when it is an object JSON can carry: anything else would fail (or
 * be sent as text) after the slot is bound, past the point where it can be freed.
 */
function checkedReply (body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null) throw new TypeError(`response must return an object, got ${body === null ? 'null' : typeof body}`)
  // Throws on a BigInt or a cycle; undefined: a toJSON that gives nothing to send.
  if (JSON.stringify(body) === undefined) throw new TypeError('response returned an object whose toJSON gives nothing to send')
  return body as Record<string, unknown>
}
