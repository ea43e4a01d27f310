import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { AbortSignalLike } from './client/client.js'
import type { OsharaSession, SessionRequest } from './client/schemas.js'
import { OsharaError, OsharaInvalidSessionError } from './errors.js'
import type { PluginConfig } from './options.js'
import { readBrowserChoices } from './route/browser-body.js'
import type { CreateSessionInput, CreateSessionOptions } from './types.js'

/** Statuses whose replies carry `Retry-After`. */
const RETRY_AFTER_STATUSES = new Set([429, 503])
/** Upstream refusals an operator must fix: logged at error with the fix. */
const NEEDS_FIX = new Set(['FST_OSHARA_ORIGIN_FORBIDDEN', 'FST_OSHARA_AGENT_NOT_FOUND', 'FST_OSHARA_UNAUTHORIZED'])

/**
 * Mints a session for `draft`: reserve a limiter slot (when `key` is given), call upstream,
 * bind the slot, run `onSession`. Any failure after the reservation frees the slot.
 */
interface MintOptions {
  /** The limiter key; undefined: not limited. */
  key: string | undefined
  log: FastifyBaseLogger
  signal: AbortSignalLike | undefined
  requestId: string | undefined
  onSession: ((session: OsharaSession) => unknown) | undefined
}

async function mint (config: PluginConfig, draft: SessionRequest, { key, log, signal, requestId, onSession }: MintOptions): Promise<OsharaSession> {
  const { limiter, client } = config
  const slot = limiter !== undefined && key !== undefined ? await limiter.acquire(key, log) : undefined
  let session: OsharaSession
  try {
    session = await client.createSession(draft, { signal, log, requestId })
  } catch (error) {
    if (slot !== undefined) await limiter?.release(slot, log)
    throw error
  }
  if (slot !== undefined) await limiter?.bind(slot, session.session_id, session.expires_in_seconds, log)
  if (onSession === undefined) return session
  try {
    await onSession(session)
  } catch (error) {
    // The session exists upstream but nobody will use it: free the slot now.
    if (slot !== undefined) await limiter?.release(slot, log)
    throw error
  }
  return session
}

/** Builds the upstream body for a browser request: agent, browser fields, server overrides, metadata. */
async function buildDraft (config: PluginConfig, request: FastifyRequest): Promise<SessionRequest> {
  const choices = readBrowserChoices(request.body as Parameters<typeof readBrowserChoices>[0], config.policy)
  const agent = choices.agent ?? config.agentSlug ?? await (config.resolveAgent as NonNullable<PluginConfig['resolveAgent']>)(request)
  const draft: SessionRequest = { agent, ...choices.fields }
  if (config.session !== undefined) Object.assign(draft, await config.session(request))
  if (config.metadata !== undefined) draft.metadata = await config.metadata(request)
  if (config.beforeSession !== undefined) await config.beforeSession(request, draft)
  return draft
}

/**
 * Aborts the upstream call when the browser goes away before the reply is written. Made for
 * every request, so it is a plain object rather than an AbortController (which costs more).
 */
class DisconnectSignal implements AbortSignalLike {
  aborted = false
  private listener: (() => void) | undefined

  constructor (reply: FastifyReply) {
    const response = reply.raw
    response.once('close', () => {
      if (response.writableFinished) return
      this.aborted = true
      this.listener?.()
    })
  }

  /** The client listens with one listener at a time. */
  addEventListener (_type: 'abort', listener: () => void): void {
    this.listener = listener
  }

  removeEventListener (): void {
    this.listener = undefined
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

async function reportFailure (config: PluginConfig, request: FastifyRequest, reply: FastifyReply, error: unknown): Promise<void> {
  if (error instanceof OsharaError) {
    if (error.retryAfterMs !== undefined && RETRY_AFTER_STATUSES.has(error.statusCode)) {
      reply.header('retry-after', Math.max(1, Math.ceil(error.retryAfterMs / 1000)))
    }
    if (NEEDS_FIX.has(error.code)) {
      request.log.error({
        code: error.code, upstreamStatus: error.upstreamStatus, requestId: error.requestId, detail: error.detail, fix: error.fix
      }, `oshara: upstream refused the session: ${error.fix as string}`)
    }
  }
  try {
    await config.onSessionError?.(request, error as Error)
  } catch (hookError) {
    request.log.error({ err: hookError }, 'oshara: onSessionError hook threw; the reply is unchanged')
  }
}

/** The `POST {path}` handler. */
export async function handleTokenRequest (config: PluginConfig, request: FastifyRequest, reply: FastifyReply): Promise<Record<string, unknown>> {
  try {
    const draft = await buildDraft(config, request)
    const key = config.limiter === undefined ? undefined : await config.limitKey(request)
    const { onSession } = config
    const session = await mint(config, draft, {
      key,
      log: request.log,
      signal: new DisconnectSignal(reply),
      requestId: undefined,
      onSession: onSession === undefined ? undefined : (minted) => onSession(request, minted)
    })
    reply.header('cache-control', 'no-store')
    return config.response === undefined ? defaultReply(session) : config.response(session, request)
  } catch (error) {
    await reportFailure(config, request, reply, error)
    throw error
  }
}

/** `fastify.oshara.createSession`: the upstream body as given, no request-based options. */
export function createSessionFor (config: PluginConfig, log: FastifyBaseLogger, input: CreateSessionInput, options: CreateSessionOptions = {}): Promise<OsharaSession> {
  const agent = input.agent ?? config.agentSlug
  if (agent === undefined) {
    return Promise.reject(new OsharaInvalidSessionError('createSession needs input.agent: the plugin agent option is a function'))
  }
  return mint(config, { ...input, agent }, { key: options.key, log, signal: options.signal, requestId: options.requestId, onSession: undefined })
}
