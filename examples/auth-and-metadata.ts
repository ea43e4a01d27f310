/**
 * Auth and the metadata extractor: only logged-in users get a voice token, the agent learns
 * who is calling (session metadata), the greeting is personal, the browser may pick one of
 * three languages, and each user may have two calls at once (ended with DELETE).
 *
 *   node --import tsx examples/auth-and-metadata.ts
 *   curl -X POST -H 'authorization: Bearer token-ada' -H 'content-type: application/json' \
 *     -d '{"language":"fr"}' http://127.0.0.1:3000/voice-token
 *   curl -X DELETE -H 'authorization: Bearer token-ada' http://127.0.0.1:3000/voice-token/<session_id>
 *
 * The bearer tokens below stand in for your real auth (a session cookie, @fastify/jwt, ...):
 * whatever it is, it puts the user on the request before the plugin runs.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
// In your app: import osharaVoice, { MemorySessionStore } from 'fastify-oshara-voice'
import osharaVoice, { MemorySessionStore } from '../lib/index.js'
import { isMain, runWithEmulator } from './run-with-emulator.js'

export interface User {
  id: string
  name: string
  email: string
  plan: 'free' | 'pro'
  orgId: string
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `authenticate`; null when nobody is logged in. */
    user: User | null
  }
}

/** Fake users by bearer token: stands in for your user database and sessions. */
export const USERS_BY_TOKEN: ReadonlyMap<string, User> = new Map([
  ['token-ada', { id: 'user-ada', name: 'Ada', email: 'ada@example.com', plan: 'pro', orgId: 'org-1' }],
  ['token-bob', { id: 'user-bob', name: 'Bob', email: 'bob@example.com', plan: 'free', orgId: 'org-2' }]
])

export interface AuthExampleOptions {
  origin: string
  baseUrl?: string
  logger?: boolean
}

/** Your auth: a logged-in user, or 401. Runs before the plugin on POST and DELETE. */
async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const token = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1]
  request.user = token === undefined ? null : USERS_BY_TOKEN.get(token) ?? null
  if (request.user === null) {
    return reply.code(401).send({ statusCode: 401, code: 'UNAUTHORIZED', error: 'Unauthorized', message: 'Log in first.' })
  }
}

/** The user `authenticate` found (the plugin only runs after it succeeded). */
function userOf (request: FastifyRequest): User {
  return request.user as User
}

export async function build ({ origin, baseUrl, logger = false }: AuthExampleOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  app.decorateRequest('user', null)
  await app.register(osharaVoice, {
    origin,
    agent: 'support-bot',
    ...(baseUrl === undefined ? {} : { baseUrl }),
    routeOptions: { onRequest: authenticate },
    // The metadata extractor: passed upstream as the session's metadata. Values are never logged.
    metadata: (request) => {
      const user = userOf(request)
      return { user_id: user.id, user_email: user.email, plan: user.plan, org_id: user.orgId }
    },
    // Server-chosen overrides: the browser cannot set these.
    session: (request) => ({ greeting: `Hi ${userOf(request).name}, how can I help?` }),
    // The browser may set only `language`, and only to one of these.
    clientFields: ['language'],
    languages: ['en', 'fr', 'de'],
    // Two active calls per user; the page ends a call with DELETE /voice-token/:session_id.
    limits: { concurrency: 2, key: (request) => userOf(request).id, store: new MemorySessionStore() },
    onSession: (request, session) => {
      request.log.info({ session_id: session.session_id, user_id: userOf(request).id }, 'voice session started')
    }
  })
  return app
}

if (isMain(import.meta.url)) await runWithEmulator('auth-and-metadata', build, (url) => `curl -X POST -H 'authorization: Bearer token-ada' ${url}/voice-token`)
