import { randomBytes } from 'node:crypto'
import type { EmulatorCharacter, EmulatorOptions, EmulatorSession } from './types.js'
import { signToken } from './jwt.js'
import { jsonReply, type Reply } from './reply.js'
import type { SessionBody } from './validate.js'

function randomHex (bytes: number): string {
  return randomBytes(bytes).toString('hex')
}

function withoutTrailingSlash (origin: string): string {
  return origin.replace(/\/$/, '')
}

/** Characters and the sessions minted for them. */
export class SessionBook {
  readonly sessions = new Map<string, EmulatorSession>()
  readonly #characters: Map<string, EmulatorCharacter>
  readonly #ttlSeconds: number
  readonly #livekitUrl: string
  readonly #livekitApiKey: string
  readonly #livekitApiSecret: string

  constructor (options: EmulatorOptions) {
    this.#characters = new Map(options.characters.map((character) => [character.slug, character]))
    this.#ttlSeconds = options.tokenTtlSeconds ?? 3600
    this.#livekitUrl = options.livekitUrl ?? 'ws://127.0.0.1:7880'
    this.#livekitApiKey = options.livekitApiKey ?? 'devkey'
    this.#livekitApiSecret = options.livekitApiSecret ?? 'secret'
  }

  activeCount (slug?: string): number {
    const now = Date.now()
    let count = 0
    for (const session of this.sessions.values()) {
      if (isActive(session, now) && (slug === undefined || session.character_slug === slug)) count++
    }
    return count
  }

  end (sessionId: string): boolean {
    const session = this.sessions.get(sessionId)
    if (session === undefined || session.ended) return false
    session.ended = true
    session.ended_at = new Date().toISOString()
    return true
  }

  /** The answer to a valid session request body: 404, 403, 429 or a new session. */
  create (body: SessionBody, origin: string | undefined): Reply {
    const character = this.#characters.get(body.agent)
    if (character === undefined || character.active === false) return jsonReply(404, { detail: 'Agent not found.' })
    const allowed = character.allowed_origins.map(withoutTrailingSlash)
    if (!allowed.includes(withoutTrailingSlash(origin ?? ''))) {
      return jsonReply(403, { detail: 'Origin not allowed for this agent.' })
    }
    const limit = character.max_concurrent_sessions
    if (limit !== undefined && this.activeCount(character.slug) >= limit) {
      return jsonReply(429, { detail: 'Concurrent session limit reached.' })
    }
    return jsonReply(200, this.#mint(character, body))
  }

  /** The billing summary of a session, or undefined when unknown. */
  summary (sessionId: string): Record<string, unknown> | undefined {
    const session = this.sessions.get(sessionId)
    if (session === undefined) return undefined
    const now = Date.now()
    const endedAt = endTime(session, now)
    return {
      session_id: session.session_id,
      character_slug: session.character_slug,
      status: endedAt === undefined ? 'active' : 'ended',
      started_at: session.created_at,
      ended_at: endedAt === undefined ? null : new Date(endedAt).toISOString(),
      duration_seconds: Math.round(((endedAt ?? now) - Date.parse(session.created_at)) / 1000),
      language: session.language ?? null,
      metadata: session.metadata ?? {},
      transcript: []
    }
  }

  #mint (character: EmulatorCharacter, body: SessionBody): Record<string, unknown> {
    const now = Date.now()
    const session: EmulatorSession = {
      session_id: `sess_${randomHex(8)}`,
      character_slug: character.slug,
      room_name: `oshara-voice-${character.slug}-${randomHex(4)}`,
      participant_identity: `user-${randomHex(4)}`,
      language: body.language ?? character.language,
      metadata: body.metadata,
      created_at: new Date(now).toISOString(),
      expiresAt: now + this.#ttlSeconds * 1000,
      ended: false
    }
    this.sessions.set(session.session_id, session)
    return {
      token: this.#token(session, now),
      livekit_url: this.#livekitUrl,
      room_name: session.room_name,
      participant_identity: session.participant_identity,
      session_id: session.session_id,
      expires_in_seconds: this.#ttlSeconds,
      character_slug: character.slug,
      system_prompt: body.system_prompt ?? character.system_prompt ?? '',
      greeting: body.greeting ?? character.greeting ?? ''
    }
  }

  #token (session: EmulatorSession, now: number): string {
    const issuedAt = Math.floor(now / 1000)
    return signToken({
      iss: this.#livekitApiKey,
      sub: session.participant_identity,
      nbf: issuedAt,
      iat: issuedAt,
      exp: issuedAt + this.#ttlSeconds,
      jti: session.participant_identity,
      name: session.participant_identity,
      // JSON.stringify(undefined) is undefined, which leaves the claim out.
      metadata: JSON.stringify(session.metadata),
      video: { room: session.room_name, roomJoin: true, canPublish: true, canSubscribe: true, canPublishData: true }
    }, this.#livekitApiSecret)
  }
}

function isActive (session: EmulatorSession, now: number): boolean {
  return !session.ended && session.expiresAt > now
}

/** When the session ended (explicitly, or by expiring), in epoch ms; undefined while active. */
function endTime (session: EmulatorSession, now: number): number | undefined {
  if (session.ended_at !== undefined) return Date.parse(session.ended_at)
  return session.expiresAt <= now ? session.expiresAt : undefined
}
