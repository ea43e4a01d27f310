import { messageOf, OsharaFieldNotAllowedError } from '../errors.js'
import type { SessionRequest } from '../client/schemas.js'
import { type ClientField, LIVEKIT_FIELDS } from './route-schemas.js'

/** What the browser may choose, fixed at register. */
export interface BrowserPolicy {
  /** Top-level body fields accepted (schema properties). */
  readonly fields: ReadonlySet<string>
  readonly clientFields: readonly ClientField[]
  /** Slugs the browser may pick; undefined: it cannot pick. */
  readonly agents: ReadonlySet<string> | undefined
  /** Lower-cased allowed languages; undefined: any valid tag. */
  readonly languages: ReadonlySet<string> | undefined
}

const AGENT_DISPATCH_FIELDS = new Set(['agent_name', 'metadata', 'deployment'])
/** LiveKit's fields the browser may send only empty; `room_config` is looked into instead. */
const LIVEKIT_TOP_FIELDS = Object.keys(LIVEKIT_FIELDS).filter((field) => field !== 'room_config')
const ROOM_CONFIG_FIELDS = new Set(['agents'])

function refuse (field: string): never {
  throw new OsharaFieldNotAllowedError(field, messageOf('FST_OSHARA_FIELD_NOT_ALLOWED', 'field', { field }))
}

function checkKeys (value: unknown, allowed: ReadonlySet<string>, prefix: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return
  for (const key in value) {
    if (!allowed.has(key)) refuse(prefix + key)
  }
}

/**
 * Runs before schema validation, because Fastify's Ajv would silently drop unknown
 * properties: anything the browser may not set is refused by name instead.
 */
export function refuseUnknownFields (body: unknown, policy: BrowserPolicy): void {
  checkKeys(body, policy.fields, '')
  const roomConfig = (body as { room_config?: { agents?: unknown } } | undefined)?.room_config
  checkKeys(roomConfig, ROOM_CONFIG_FIELDS, 'room_config.')
  const agents = roomConfig?.agents
  if (Array.isArray(agents)) checkKeys(agents[0], AGENT_DISPATCH_FIELDS, 'room_config.agents[0].')
}

type Body = Record<string, unknown> & {
  agent?: string
  room_config?: { agents?: Array<{ agent_name?: string, metadata?: string, deployment?: string }> }
}

function isEmpty (value: unknown): boolean {
  return value === undefined || value === '' || (typeof value === 'object' && Object.keys(value as object).length === 0)
}

/** The browser's choices from a schema-valid body: its agent (if any) and the client fields it set. */
export function readBrowserChoices (body: Body, policy: BrowserPolicy): { agent: string | undefined, fields: Partial<SessionRequest> } {
  const fields: Partial<SessionRequest> = {}
  for (const field of LIVEKIT_TOP_FIELDS) {
    if (!isEmpty(body[field])) refuse(field)
  }
  const dispatch = body.room_config?.agents?.[0]
  if (!isEmpty(dispatch?.metadata)) refuse('room_config.agents[0].metadata')
  if (!isEmpty(dispatch?.deployment)) refuse('room_config.agents[0].deployment')
  const agent = pickAgent(body.agent, dispatch?.agent_name, policy)
  for (const field of policy.clientFields) {
    const value = body[field]
    if (typeof value === 'string') fields[field] = value
  }
  if (fields.language !== undefined && policy.languages !== undefined && !policy.languages.has(fields.language.toLowerCase())) {
    throw new OsharaFieldNotAllowedError('language', messageOf('FST_OSHARA_FIELD_NOT_ALLOWED', 'language', { language: fields.language }))
  }
  return { agent, fields }
}

function pickAgent (agent: string | undefined, agentName: string | undefined, policy: BrowserPolicy): string | undefined {
  const fromLiveKit = isEmpty(agentName) ? undefined : agentName
  if (agent !== undefined && fromLiveKit !== undefined && agent !== fromLiveKit) {
    throw new OsharaFieldNotAllowedError('agent', messageOf('FST_OSHARA_FIELD_NOT_ALLOWED', 'agents-disagree'))
  }
  const chosen = agent ?? fromLiveKit
  if (chosen === undefined) return undefined
  const field = agent === undefined ? 'room_config.agents[0].agent_name' : 'agent'
  if (policy.agents === undefined) refuse(field)
  if (!policy.agents.has(chosen)) throw new OsharaFieldNotAllowedError(field, messageOf('FST_OSHARA_FIELD_NOT_ALLOWED', 'agent', { agent: chosen, field }))
  return chosen
}
