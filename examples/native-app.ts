/**
 * A native (iOS / Android) app gets its voice session from your API: the route authenticates
 * the app's bearer token and calls `fastify.oshara.createSession` (the same client, retries,
 * errors and limiter as the browser route), then returns what a LiveKit SDK needs to join.
 *
 *   node --import tsx examples/native-app.ts
 *   curl -X POST -H 'authorization: Bearer mobile-token-ada' http://127.0.0.1:3000/api/mobile/voice-session
 *   curl -X DELETE -H 'authorization: Bearer mobile-token-ada' http://127.0.0.1:3000/api/mobile/voice-session/<session_id>
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
// In your app: import osharaVoice, { OsharaError } from 'fastify-oshara-voice'
import osharaVoice, { OsharaError } from '../lib/index.js'
import { isMain, runWithEmulator } from './run-with-emulator.js'

interface MobileUser {
  id: string
  email: string
  plan: string
}

/** Fake app tokens: stands in for your real token verification. */
export const MOBILE_TOKENS: ReadonlyMap<string, MobileUser> = new Map([
  ['mobile-token-ada', { id: 'user-ada', email: 'ada@example.com', plan: 'pro' }],
  ['mobile-token-bob', { id: 'user-bob', email: 'bob@example.com', plan: 'free' }]
])

export interface NativeAppOptions {
  origin: string
  baseUrl?: string
  logger?: boolean
}

/** What the app gets: enough to join with a LiveKit SDK and to end the session later. */
export interface MobileVoiceSession {
  session_id: string
  livekit_url: string
  token: string
  room_name: string
  participant_identity: string
  /** ISO time the token stops working. */
  expires_at: string
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `authenticate` on the mobile routes. */
    mobileUser: MobileUser | null
  }
}

/** onRequest: the user of the app's bearer token, or 401 before the body is even read. */
async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const token = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1]
  request.mobileUser = token === undefined ? null : MOBILE_TOKENS.get(token) ?? null
  if (request.mobileUser === null) {
    return reply.code(401).send({ statusCode: 401, code: 'UNAUTHORIZED', error: 'Unauthorized', message: 'Invalid app token.' })
  }
}

/** Aborts when the app hangs up before the answer is written, so the upstream call stops too. */
function abandonedSignal (reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) controller.abort() })
  return controller.signal
}

export async function build ({ origin, baseUrl, logger = false }: NativeAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  app.decorateRequest('mobileUser', null)
  await app.register(osharaVoice, {
    origin,
    agent: 'support-bot',
    ...(baseUrl === undefined ? {} : { baseUrl }),
    // No browser route here: only the decorator (add route: true to serve /voice-token too).
    route: false,
    // One active call per user; createSession applies it through its `key` option.
    limits: { concurrency: 1 }
  })

  app.post<{ Body: { language?: string } }>('/api/mobile/voice-session', {
    onRequest: authenticate,
    // The body is optional: a bare POST asks for a session with the defaults.
    preValidation: async (request) => { request.body ??= {} },
    schema: {
      body: {
        type: 'object',
        properties: { language: { type: 'string', pattern: '^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$', maxLength: 35 } },
        additionalProperties: false
      }
    }
  }, async (request, reply) => {
    const user = request.mobileUser as MobileUser
    try {
      const session = await app.oshara.createSession({
        ...(request.body.language === undefined ? {} : { language: request.body.language }),
        metadata: { user_id: user.id, user_email: user.email, plan: user.plan, client: 'mobile' }
      }, { key: user.id, signal: abandonedSignal(reply) })
      const answer: MobileVoiceSession = {
        session_id: session.session_id,
        livekit_url: session.livekit_url,
        token: session.token,
        room_name: session.room_name,
        participant_identity: session.participant_identity,
        expires_at: new Date(Date.now() + session.expires_in_seconds * 1000).toISOString()
      }
      return reply.header('cache-control', 'no-store').send(answer)
    } catch (error) {
      // OsharaErrors carry the status and code to answer with; tell the app when to retry.
      if (error instanceof OsharaError && error.retryAfterMs !== undefined && (error.statusCode === 429 || error.statusCode === 503)) {
        reply.header('retry-after', Math.max(1, Math.ceil(error.retryAfterMs / 1000)))
      }
      throw error
    }
  })

  // The app ends its call: free the slot, only when this user holds it.
  app.delete<{ Params: { session_id: string } }>('/api/mobile/voice-session/:session_id', { onRequest: authenticate }, async (request, reply) => {
    const released = await app.oshara.releaseSession(request.params.session_id, { key: (request.mobileUser as MobileUser).id })
    return reply.code(released ? 204 : 404).send()
  })
  return app
}

if (isMain(import.meta.url)) await runWithEmulator('native-app', build, (url) => `curl -X POST -H 'authorization: Bearer mobile-token-ada' ${url}/api/mobile/voice-session`)
