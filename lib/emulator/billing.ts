import type { EmulatorApiKey, EmulatorFormResponse, EmulatorSession, EmulatorSessionSummary, EmulatorUsage } from './emulator-types.js'
import { jsonReply, type Reply } from './reply.js'
import type { SessionBook } from './sessions.js'
import { costUnits, formatCost } from './call-summaries.js'
import { isPlainObject } from './session-body.js'

const DEFAULT_PAGE_SIZE = 50
const MAX_PAGE_SIZE = 200
const POSITIVE_INTEGER = /^[1-9]\d*$/

/** What a key may read: everything for a plain key. */
type Scope = Omit<EmulatorApiKey, 'key'>

/** The scope of each configured key. */
export function keyScopes (apiKeys: Array<string | EmulatorApiKey>): Map<string, Scope> {
  return new Map(apiKeys.map((entry) => typeof entry === 'string' ? [entry, {}] : [entry.key, entry]))
}

function sees (scope: Scope, tenantId: string, slug: string): boolean {
  return (scope.tenant_id === undefined || scope.tenant_id === tenantId) &&
    (scope.characters === undefined || scope.characters.includes(slug))
}

function ok (status: number, message: string, data: unknown): Reply {
  return jsonReply(status, { success: true, message, data, errors: null })
}

export function billingError (status: number, message: string): Reply {
  return jsonReply(status, { success: false, message, data: null, errors: { detail: message } })
}

const UNAUTHORIZED = billingError(401, 'Invalid API key.')

/** The billing and form-response endpoints (all behind `X-API-Key`). */
export class Billing {
  readonly #book: SessionBook
  readonly #scopes: Map<string, Scope>
  readonly #forms: Array<{ slug: string, item: EmulatorFormResponse }> = []

  constructor (book: SessionBook, scopes: Map<string, Scope>) {
    this.#book = book
    this.#scopes = scopes
  }

  /** `GET /api/billing/sessions/{id}/` */
  summary (key: string | undefined, sessionId: string): Reply {
    const scope = this.#scopes.get(key as string)
    if (scope === undefined) return UNAUTHORIZED
    const session = this.#book.sessions.get(sessionId)
    if (session === undefined || !sees(scope, session.tenant_id, session.character_slug)) return billingError(404, 'Session not found.')
    return ok(200, 'OK', this.#book.summary(session))
  }

  /** `GET /api/billing/usage/` */
  usage (key: string | undefined, query: URLSearchParams): Reply {
    const scope = this.#scopes.get(key as string)
    if (scope === undefined) return UNAUTHORIZED
    const filter = usageFilter(query)
    if (typeof filter === 'string') return billingError(400, filter)
    const sessions = [...this.#book.sessions.values()]
      .filter((session) => sees(scope, session.tenant_id, session.character_slug) && filter(session))
      .sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at))
    const summaries = sessions.map((session) => this.#book.summary(session))
    const page = pageOf(summaries, query)
    return typeof page === 'string' ? page === NO_SUCH_PAGE ? billingError(404, page) : billingError(400, page) : ok(200, 'OK', usageOf(summaries, page))
  }

  /** `GET /api/agents/{slug}/form-responses/` */
  formResponses (key: string | undefined, slug: string, query: URLSearchParams): Reply {
    const problem = this.#characterProblem(key, slug)
    if (problem !== undefined) return problem
    const sessionId = query.get('session_id')
    const formId = query.get('form_id')
    const items = this.#forms
      .filter(({ slug: of, item }) => of === slug && (sessionId === null || item.session_id === sessionId) && (formId === null || item.form_id === formId))
      .map(({ item }) => item)
    // Not wrapped, not paginated: a bare array.
    return jsonReply(200, items)
  }

  /** `POST /api/agents/{slug}/form-responses/` with `{ form_id, session_id, values }`: 201. */
  addFormResponse (key: string | undefined, slug: string, body: unknown): Reply {
    const problem = this.#characterProblem(key, slug)
    if (problem !== undefined) return problem
    const bodyError = formBodyError(body)
    if (bodyError !== undefined) return billingError(400, bodyError)
    const { form_id: formId, session_id: sessionId, values } = body as Pick<EmulatorFormResponse, 'form_id' | 'session_id' | 'values'>
    if (this.#book.sessions.get(sessionId)?.character_slug !== slug) return billingError(404, 'Session not found.')
    const item = { id: this.#forms.length + 1, form_id: formId, session_id: sessionId, values, created_at: new Date().toISOString() }
    this.#forms.push({ slug, item })
    return ok(201, 'Created', item)
  }

  /** 401 for a bad key, 404 for an unknown character, 403 for one outside the key's scope (only its creator may). */
  #characterProblem (key: string | undefined, slug: string): Reply | undefined {
    const scope = this.#scopes.get(key as string)
    if (scope === undefined) return UNAUTHORIZED
    const tenantId = this.#book.tenantOf(slug)
    if (tenantId === undefined) return billingError(404, 'Agent not found.')
    if (!sees(scope, tenantId, slug)) return jsonReply(403, { detail: 'You do not have permission to perform this action.' })
    return undefined
  }
}

/** Whether a session passes the usage filters, or the message of a 400 for a bad `start`/`end`. */
function usageFilter (query: URLSearchParams): ((session: EmulatorSession) => boolean) | string {
  const slug = query.get('character_slug')
  const tenantId = query.get('tenant_id')
  const bounds = { start: -Infinity, end: Infinity }
  for (const name of ['start', 'end'] as const) {
    const value = query.get(name)
    if (value === null) continue
    bounds[name] = Date.parse(value)
    if (Number.isNaN(bounds[name])) return `${name}: must be an ISO 8601 time.`
  }
  return (session) => {
    const created = Date.parse(session.created_at)
    return (slug === null || session.character_slug === slug) && (tenantId === null || session.tenant_id === tenantId) &&
      created >= bounds.start && created <= bounds.end
  }
}

const NO_SUCH_PAGE = 'Invalid page.'

/** The page of `items` the query asks for, or why not (`NO_SUCH_PAGE` past the last page, else a 400's message). */
function pageOf<T> (items: T[], query: URLSearchParams): T[] | string {
  const page = query.get('page') ?? '1'
  const size = query.get('page_size') ?? String(DEFAULT_PAGE_SIZE)
  if (!POSITIVE_INTEGER.test(page)) return 'page: must be a positive integer.'
  if (!POSITIVE_INTEGER.test(size) || Number(size) > MAX_PAGE_SIZE) return `page_size: must be an integer from 1 to ${MAX_PAGE_SIZE}.`
  const number = Number(page)
  const pageSize = Number(size)
  if (number > Math.max(1, Math.ceil(items.length / pageSize))) return NO_SUCH_PAGE
  return items.slice((number - 1) * pageSize, number * pageSize)
}

/** The usage list's `data`: totals over every selected summary, and the page's summaries. */
function usageOf (summaries: EmulatorSessionSummary[], page: EmulatorSessionSummary[]): EmulatorUsage {
  const sum = (field: 'llm_input_tokens' | 'llm_output_tokens' | 'tts_characters' | 'stt_audio_seconds'): number =>
    summaries.reduce((total, summary) => total + summary[field], 0)
  return {
    total_sessions: summaries.length,
    total_llm_input_tokens: sum('llm_input_tokens'),
    total_llm_output_tokens: sum('llm_output_tokens'),
    total_stt_audio_seconds: sum('stt_audio_seconds'),
    total_tts_characters: sum('tts_characters'),
    total_estimated_cost_usd: formatCost(summaries.reduce((total, summary) => total + costUnits(summary.estimated_cost_usd), 0)),
    sessions: { data: page }
  }
}

function formBodyError (body: unknown): string | undefined {
  if (!isPlainObject(body)) return 'Request body must be a JSON object.'
  if (typeof body.form_id !== 'string' || body.form_id === '') return 'form_id: this field is required and must be a non-empty string.'
  if (typeof body.session_id !== 'string' || body.session_id === '') return 'session_id: this field is required and must be a non-empty string.'
  if (!isPlainObject(body.values)) return 'values: this field is required and must be an object.'
  return undefined
}
