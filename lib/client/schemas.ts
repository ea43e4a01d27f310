import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { failure } from '../errors.js'

/** A BCP-47 language tag: a 2-8 letter language, then 1-8 character subtags. */
export const LANGUAGE_TAG = /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/

/** `language`, whoever sets it (the browser, the server, the decorator's input): what Oshara documents, a BCP-47 code. */
export const LanguageSchema = Type.String({ pattern: LANGUAGE_TAG.source, maxLength: 35, description: 'BCP-47 language tag of at most 35 characters' })

/** What the client accepts for `POST /api/agents/agent-session/`: only set fields are sent. */
export const SessionRequestSchema = Type.Object({
  agent: Type.String({ minLength: 1 }),
  language: Type.Optional(LanguageSchema),
  system_prompt: Type.Optional(Type.String()),
  greeting: Type.Optional(Type.String()),
  voice_model: Type.Optional(Type.String()),
  reference_audio_url: Type.Optional(Type.String()),
  mcp_headers: Type.Optional(Type.Record(Type.String(), Type.String())),
  origin_url: Type.Optional(Type.String()),
  metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
}, { additionalProperties: false })

export type SessionRequest = Static<typeof SessionRequestSchema>

/** Server-chosen per-session overrides (everything but `agent` and `metadata`). */
export type SessionOverrides = Omit<SessionRequest, 'agent' | 'metadata'>

/** A minted session as Oshara returns it; unknown extra fields are kept. */
export const SessionResponseSchema = Type.Object({
  token: Type.String({ minLength: 1 }),
  livekit_url: Type.String({ minLength: 1 }),
  session_id: Type.String({ minLength: 1 }),
  room_name: Type.String(),
  participant_identity: Type.String(),
  expires_in_seconds: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  character_slug: Type.Optional(Type.String()),
  system_prompt: Type.Optional(Type.String()),
  greeting: Type.Optional(Type.String())
})

export interface OsharaSession extends Static<typeof SessionResponseSchema> {
  /** Filled with 3600 (Oshara's default) when the upstream leaves it out. */
  expires_in_seconds: number
  [field: string]: unknown
}

/** An HTTP field name is an RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** A field value may hold no control character but HTAB: no CR, LF (header injection) or NUL. */
// eslint-disable-next-line no-control-regex
const HEADER_VALUE_CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/
/** A name short and printable enough to be named in an error message. */
const NAMEABLE = /^[\x20-\x7e]{1,64}$/

/**
 * What is wrong with `mcp_headers` as HTTP header fields (Oshara sends them to the agent's MCP
 * servers), or undefined. Names the offending header when its name is printable; never a value.
 */
export function mcpHeadersProblem (headers: Record<string, string> | undefined): string | undefined {
  if (headers === undefined) return undefined
  for (const name of Object.keys(headers)) {
    const named = NAMEABLE.test(name) ? ` ${JSON.stringify(name)}` : ''
    if (!HEADER_NAME.test(name)) return `mcp_headers name${named} is not an HTTP header name (an RFC 9110 token: letters, digits and !#$%&'*+-.^_\`|~)`
    if (HEADER_VALUE_CONTROL.test(headers[name] as string)) {
      return `mcp_headers${named} value holds a control character (CR, LF, NUL, ...); only HTAB is allowed in a header value`
    }
  }
  return undefined
}

/**
 * `value` (a session request, its metadata, or what it is fingerprinted by) as JSON. What JSON
 * cannot carry (a BigInt, a cycle, a `toJSON` that throws or gives nothing: only metadata can hold
 * such values) is `FST_OSHARA_INVALID_SESSION`, not a `TypeError` the browser would read.
 */
export function sessionJson (value: unknown): string {
  let json: string | undefined
  try {
    json = JSON.stringify(value)
  } catch (cause) {
    throw failure('FST_OSHARA_INVALID_SESSION', 'not-json', { detail: `the session request cannot be sent as JSON: ${(cause as Error).message}`, cause })
  }
  if (json === undefined) throw failure('FST_OSHARA_INVALID_SESSION', 'not-json', { detail: 'the session request cannot be sent as JSON: a toJSON gives nothing to send' })
  return json
}

export const checkSessionRequest = TypeCompiler.Compile(SessionRequestSchema)
export const checkSessionResponse = TypeCompiler.Compile(SessionResponseSchema)
