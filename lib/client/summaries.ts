import { type Static, type TSchema, Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/**
 * What Oshara's read endpoints answer, as its API reference documents them: one session's summary
 * (`GET /api/billing/sessions/{id}/`) and the usage list (`GET /api/billing/usage/`), each inside
 * `{ success, message, data, errors }`, and the form responses (`GET /api/agents/{slug}/form-responses/`),
 * a bare JSON array. Known fields are checked when present; unknown ones are kept; absent optional
 * ones are allowed, so a field Oshara adds or drops later does not break a lookup.
 */

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])
const optional = <T extends TSchema>(schema: T) => Type.Optional(schema)

export const TranscriptEntrySchema = Type.Object({
  /** `'user'` or `'assistant'` (tool calls and system messages are left out). */
  role: Type.String(),
  text: Type.String(),
  /** 0-based. */
  turn_index: optional(Type.Number()),
  /** Seconds since the session started. */
  ts: optional(Nullable(Type.Number()))
})

export const SessionSummarySchema = Type.Object({
  session_id: Type.String({ minLength: 1 }),
  /** Oshara's own row id: a number (not the session id). */
  id: optional(Type.Union([Type.Number(), Type.String()])),
  tenant_id: optional(Nullable(Type.String())),
  character_slug: optional(Nullable(Type.String())),
  /** The Oshara user who minted it; null for an anonymous (Origin-gated) session. */
  user: optional(Type.Unknown()),
  room_name: optional(Nullable(Type.String())),
  origin_url: optional(Nullable(Type.String())),
  metadata: optional(Nullable(Type.Record(Type.String(), Type.Unknown()))),
  session_duration_seconds: optional(Nullable(Type.Number())),
  turn_count: optional(Nullable(Type.Number())),
  interruption_count: optional(Nullable(Type.Number())),
  llm_input_tokens: optional(Nullable(Type.Number())),
  llm_output_tokens: optional(Nullable(Type.Number())),
  llm_model: optional(Nullable(Type.String())),
  llm_provider: optional(Nullable(Type.String())),
  stt_audio_seconds: optional(Nullable(Type.Number())),
  stt_provider: optional(Nullable(Type.String())),
  tts_characters: optional(Nullable(Type.Number())),
  tts_provider: optional(Nullable(Type.String())),
  /** A decimal string, e.g. `"0.008310"`: parse it with care (it is money). */
  estimated_cost_usd: optional(Nullable(Type.String())),
  /** Null until the call is over and its summary computed: the only end-of-call signal Oshara gives. */
  finalized_at: optional(Nullable(Type.String())),
  recording_status: optional(Nullable(Type.String())),
  recording_url: optional(Nullable(Type.String())),
  recording_presigned_url: optional(Nullable(Type.String())),
  transcript: optional(Nullable(Type.Array(TranscriptEntrySchema))),
  transcript_text: optional(Nullable(Type.String())),
  created_at: optional(Nullable(Type.String()))
})

/** One session's billing summary and transcript; `finalized_at` is null while the call runs. Unknown fields are kept. */
export type OsharaSessionSummary = Static<typeof SessionSummarySchema> & { [field: string]: unknown }

export const UsageTotalsSchema = Type.Object({
  total_sessions: Type.Number(),
  total_llm_input_tokens: optional(Type.Number()),
  total_llm_output_tokens: optional(Type.Number()),
  total_stt_audio_seconds: optional(Type.Number()),
  total_tts_characters: optional(Type.Number()),
  /** A decimal string, e.g. `"0.011920"`, as sent. */
  total_estimated_cost_usd: optional(Type.String())
})

/** The usage list's totals over every page the filters select: its `total_*` fields, as sent. */
export type OsharaUsageTotals = Static<typeof UsageTotalsSchema> & { [field: `total_${string}`]: unknown }

/** `data` of the usage list: the totals at the top, the page's summaries in `sessions.data` (its other keys are undocumented). */
const UsageDataSchema = Type.Composite([UsageTotalsSchema, Type.Object({
  sessions: Type.Object({ data: Type.Array(SessionSummarySchema) })
})])

export const FormResponseSchema = Type.Object({
  id: Type.Union([Type.Number(), Type.String()]),
  form_id: Type.String(),
  session_id: Nullable(Type.String()),
  values: Type.Record(Type.String(), Type.Unknown()),
  created_at: optional(Nullable(Type.String()))
})

export type OsharaFormResponse = Static<typeof FormResponseSchema> & { [field: string]: unknown }

const envelope = <T extends TSchema>(data: T) => Type.Object({ success: Type.Literal(true), data })

export const checkSummaryEnvelope = TypeCompiler.Compile(envelope(SessionSummarySchema))
/** What tracking needs of a summary: an envelope whose `data` names its session. */
export const checkSummaryCore = TypeCompiler.Compile(envelope(Type.Object({ session_id: Type.String({ minLength: 1 }) })))
export const checkSummary = TypeCompiler.Compile(SessionSummarySchema)
export const checkUsageEnvelope = TypeCompiler.Compile(envelope(UsageDataSchema))
export const checkFormResponses = TypeCompiler.Compile(Type.Array(FormResponseSchema))

/** Filters of `listSessions` (`GET /api/billing/usage/`); `start`/`end` bound `created_at`, inclusive (a `Date` or an ISO time). */
export interface ListSessionsFilters {
  character_slug?: string
  tenant_id?: string
  start?: Date | string
  end?: Date | string
  /** Summaries fetched per request, 1 to 200. Default 200. */
  page_size?: number
}

/** Filters of `listFormResponses`. */
export interface ListFormResponsesFilters {
  session_id?: string
  form_id?: string
}

/** Every summary the filters select, page after page as the loop asks for them (`for await`), with the totals. */
export interface OsharaSessionList extends AsyncIterable<OsharaSessionSummary> {
  /** The `total_*` fields over every page, as sent (the cost stays a decimal string); one request (the first page's), made once. */
  totals (): Promise<OsharaUsageTotals>
}

/** Most summaries per usage page (Oshara's documented maximum), and this client's default. */
export const MAX_PAGE_SIZE = 200

/** A query string of the set filters (a `Date` as an ISO time), in the order given. */
export function queryOf (filters: object): URLSearchParams {
  const query = new URLSearchParams()
  for (const [name, value] of Object.entries(filters)) {
    if (value !== undefined) query.set(name, value instanceof Date ? value.toISOString() : String(value))
  }
  return query
}

/** The `total_*` fields of a usage list's `data`, as sent. */
export function totalsOf (data: Record<string, unknown>): OsharaUsageTotals {
  const totals: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(data)) if (name.startsWith('total_')) totals[name] = value
  return totals as OsharaUsageTotals
}
