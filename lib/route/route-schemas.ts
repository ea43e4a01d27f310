import { type TObject, type TProperties, Type } from '@sinclair/typebox'
import { LanguageSchema } from '../client/schemas.js'

/** Fields of the session request the browser may be allowed to set (`clientFields`). */
export const CLIENT_FIELDS = ['language', 'greeting', 'voice_model', 'system_prompt'] as const
export type ClientField = typeof CLIENT_FIELDS[number]

const CLIENT_FIELD_SCHEMAS = {
  language: LanguageSchema,
  greeting: Type.String({ maxLength: 2000 }),
  voice_model: Type.String({ minLength: 1, maxLength: 200 }),
  system_prompt: Type.String({ maxLength: 8000 })
}

/**
 * What LiveKit's `TokenSource.endpoint()` sends. None of it is configurable here: only
 * `room_config.agents[0].agent_name` is read (as `agent`); other values must be empty.
 */
export const LIVEKIT_FIELDS = {
  room_name: Type.String(),
  participant_identity: Type.String(),
  participant_name: Type.String(),
  participant_metadata: Type.String(),
  participant_attributes: Type.Record(Type.String(), Type.String()),
  room_config: Type.Object({
    agents: Type.Optional(Type.Array(Type.Object({
      agent_name: Type.Optional(Type.String()),
      metadata: Type.Optional(Type.String()),
      deployment: Type.Optional(Type.String())
    }, { additionalProperties: false }), { maxItems: 1 }))
  }, { additionalProperties: false })
}

/** The body schema of `POST {path}`: exactly the fields this registration lets the browser send. */
export function buildBodySchema (clientFields: readonly ClientField[], agentSelectable: boolean): TObject {
  const properties: TProperties = {}
  if (agentSelectable) properties.agent = Type.Optional(Type.String({ minLength: 1, maxLength: 200 }))
  for (const field of clientFields) properties[field] = Type.Optional(CLIENT_FIELD_SCHEMAS[field])
  for (const [field, schema] of Object.entries(LIVEKIT_FIELDS)) properties[field] = Type.Optional(schema)
  return Type.Object(properties, { additionalProperties: false })
}

export const TokenReplySchema = Type.Object({
  token: Type.String({ description: 'LiveKit access token (JWT)' }),
  livekit_url: Type.String(),
  session_id: Type.String(),
  room_name: Type.String(),
  participant_identity: Type.String(),
  expires_in_seconds: Type.Number(),
  server_url: Type.String({ description: 'Same as livekit_url, for LiveKit TokenSource.endpoint()' }),
  participant_token: Type.String({ description: 'Same as token, for LiveKit TokenSource.endpoint()' })
})

export const SessionParamsSchema = Type.Object({
  session_id: Type.String({ minLength: 1 })
})

/** `DELETE {path}/*`: session ids longer than Fastify's `maxParamLength`. */
export const WildcardParamsSchema = Type.Object({
  '*': Type.String({ minLength: 1 })
})
