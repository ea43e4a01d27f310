const STRING_FIELDS = ['language', 'system_prompt', 'greeting', 'voice_model', 'reference_audio_url', 'origin_url']

export interface SessionBody {
  agent: string
  language?: string
  system_prompt?: string
  greeting?: string
  origin_url?: string
  metadata?: Record<string, unknown>
}

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The `detail` of a 400 answer to this session request body, or undefined when it is valid. */
export function sessionBodyError (body: unknown): string | undefined {
  if (!isPlainObject(body)) return 'Request body must be a JSON object.'
  if (typeof body.agent !== 'string' || body.agent === '') return 'agent: this field is required and must be a non-empty string.'
  const wrongString = STRING_FIELDS.find((field) => body[field] !== undefined && typeof body[field] !== 'string')
  if (wrongString !== undefined) return `${wrongString}: must be a string.`
  if (body.mcp_headers !== undefined && !isStringRecord(body.mcp_headers)) return 'mcp_headers: must be an object of string values.'
  if (body.metadata !== undefined && !isPlainObject(body.metadata)) return 'metadata: must be an object.'
  return undefined
}

function isStringRecord (value: unknown): boolean {
  return isPlainObject(value) && Object.values(value).every((item) => typeof item === 'string')
}
