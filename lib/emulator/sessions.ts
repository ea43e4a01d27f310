import { randomBytes } from 'node:crypto'
import type { EmulatorCharacter, EmulatorEndOptions, EmulatorOptions, EmulatorSession, EmulatorSessionSummary } from './emulator-types.js'
import { signToken } from './jwt.js'
import { jsonReply, type Reply } from './reply.js'
import { callDetails, elapsedSeconds, endOptionsError, summaryOf, type CallDetails, type FinalizedCall } from './call-summaries.js'
import type { SessionBody } from './session-body.js'
import { appearanceOf } from './character-appearance.js'

const DEFAULT_TENANT = 'tenant_local'

function randomHex (bytes: number): string {
  return randomBytes(bytes).toString('hex')
}

function withoutTrailingSlash (origin: string): string {
  return origin.replace(/\/$/, '')
}

/** Characters and the sessions minted for them. */
export class SessionBook {
  /** Oshara's summary ids are row numbers. */
  #lastSummaryId = 0
  readonly sessions = new Map<string, EmulatorSession>()
  readonly #characters: Map<string, EmulatorCharacter>
  readonly #ttlSeconds: number
  readonly #livekitUrl: string
  readonly #livekitApiKey: string
  readonly #livekitApiSecret: string
  readonly #finalizeDelayMs: number
  readonly #costPerMinuteUsd: number
  /** Details of the calls `end` ended, by session id. */
  readonly #ended = new Map<string, CallDetails>()

  constructor (options: EmulatorOptions) {
    this.#characters = new Map(options.characters.map((character) => [character.slug, character]))
    this.#ttlSeconds = options.tokenTtlSeconds ?? 3600
    this.#livekitUrl = options.livekitUrl ?? 'ws://127.0.0.1:7880'
    this.#livekitApiKey = options.livekitApiKey ?? 'devkey'
    this.#livekitApiSecret = options.livekitApiSecret ?? 'secret'
    this.#finalizeDelayMs = options.finalizeDelayMs ?? 0
    this.#costPerMinuteUsd = options.costPerMinuteUsd ?? 0.05
  }

  /** The tenant of a character, undefined when the slug is unknown. */
  tenantOf (slug: string): string | undefined {
    const character = this.#characters.get(slug)
    return character === undefined ? undefined : character.tenant_id ?? DEFAULT_TENANT
  }

  activeCount (slug?: string): number {
    const now = Date.now()
    let count = 0
    for (const session of this.sessions.values()) {
      if (isActive(session, now) && (slug === undefined || session.character_slug === slug)) count++
    }
    return count
  }

  /** Ends a call (see `OsharaEmulator.endSession`); throws a TypeError for invalid options. */
  end (sessionId: string, options: EmulatorEndOptions = {}): boolean {
    const problem = endOptionsError(options)
    if (problem !== undefined) throw new TypeError(problem)
    const session = this.sessions.get(sessionId)
    if (session === undefined || session.ended) return false
    const endedAt = Math.min(Date.now(), session.expiresAt)
    session.ended = true
    session.ended_at = new Date(endedAt).toISOString()
    session.end_reason = options.reason ?? 'client_left'
    this.#ended.set(sessionId, callDetails(options, elapsedSeconds(session, endedAt), session.greeting, this.#costPerMinuteUsd))
    return true
  }

  /** The answer to `POST /_emulator/sessions/{id}/end` with `options` as its body. */
  endReply (sessionId: string, options: unknown): Reply {
    const problem = endOptionsError(options)
    if (problem !== undefined) return jsonReply(400, { detail: problem })
    const session = this.sessions.get(sessionId)
    if (session === undefined) return jsonReply(404, { detail: 'Session not found.' })
    if (!this.end(sessionId, options as EmulatorEndOptions)) return jsonReply(409, { detail: 'Session already ended.' })
    return jsonReply(200, { session_id: sessionId, ended_at: session.ended_at, end_reason: session.end_reason })
  }

  /** The answer to a valid session request body: 404, 403, 429 or a new session. */
  create (body: SessionBody, origin: string | undefined): Reply {
    const character = this.#characterFor(body.agent, origin)
    if (!('slug' in character)) return character
    const limit = character.max_concurrent_sessions
    if (limit !== undefined && this.activeCount(character.slug) >= limit) {
      return jsonReply(429, { detail: 'Concurrent session limit reached.' })
    }
    return jsonReply(200, this.#mint(character, body, origin))
  }

  /** `GET /api/agents/{slug}/appearance/`: public, gated by the character's `allowed_origins` like minting. */
  appearance (slug: string, origin: string | undefined): Reply {
    const character = this.#characterFor(slug, origin)
    return 'slug' in character ? jsonReply(200, appearanceOf(character)) : character
  }

  /** The active character of `slug` when `origin` is allowed; else the 404 or 403 Oshara answers. */
  #characterFor (slug: string, origin: string | undefined): EmulatorCharacter | Reply {
    const character = this.#characters.get(slug)
    if (character === undefined || character.active === false) return jsonReply(404, { detail: 'Agent not found.' })
    const allowed = character.allowed_origins.map(withoutTrailingSlash)
    if (!allowed.includes(withoutTrailingSlash(origin ?? ''))) {
      return jsonReply(403, { detail: 'Origin not allowed for this agent.' })
    }
    return character
  }

  /** The billing summary of `session` as of now. */
  summary (session: EmulatorSession): EmulatorSessionSummary {
    return summaryOf(session, this.#finalized(session, Date.now()))
  }

  /** The call, when it is over (ended, or its token expired) and its summary finalized by `now`. */
  #finalized (session: EmulatorSession, now: number): FinalizedCall | undefined {
    const ended = this.#ended.get(session.session_id)
    const endedAt = ended === undefined ? session.expiresAt : Date.parse(session.ended_at as string)
    const finalizedAt = endedAt + this.#finalizeDelayMs
    if (finalizedAt > now) return undefined
    return { finalizedAt, details: ended ?? callDetails({}, elapsedSeconds(session, endedAt), session.greeting, this.#costPerMinuteUsd) }
  }

  #mint (character: EmulatorCharacter, body: SessionBody, origin: string | undefined): Record<string, unknown> {
    const now = Date.now()
    const session: EmulatorSession = {
      summary_id: ++this.#lastSummaryId,
      tenant_id: character.tenant_id ?? DEFAULT_TENANT,
      session_id: `sess_${randomHex(8)}`,
      character_slug: character.slug,
      room_name: `oshara-voice-${character.slug}-${randomHex(4)}`,
      participant_identity: `user-${randomHex(4)}`,
      language: body.language ?? character.language,
      metadata: body.metadata,
      // `create` only mints for an allowed Origin.
      origin_url: body.origin_url ?? origin as string,
      greeting: body.greeting ?? character.greeting ?? '',
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
      greeting: session.greeting
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
