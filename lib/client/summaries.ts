import { type Static, type TSchema, Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/**
 * What Oshara's read endpoints answer, as documented: one session's summary
 * (`GET /api/billing/sessions/{id}/`), the usage list (`GET /api/billing/usage/`) and form
 * responses (`GET /api/agents/{slug}/form-responses/`), each inside `{ success, message, data,
 * errors }`. Known fields are checked when present; unknown ones are kept; absent optional ones
 * are allowed, so a field Oshara adds or drops later does not break a lookup.
 */

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])
const optional = <T extends TSchema>(schema: T) => Type.Optional(schema)

export const TranscriptEntrySchema = Type.Object({
  role: Type.String(),
  text: Type.String(),
  turn_index: optional(Type.Number()),
  ts: optional(Nullable(Type.String()))
})

export const SessionSummarySchema = Type.Object({
  session_id: Type.String({ minLength: 1 }),
  id: optional(Type.Union([Type.String(), Type.Number()])),
  tenant_id: optional(Nullable(Type.String())),
  character_slug: optional(Nullable(Type.String())),
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
  /** A decimal string, e.g. `"0.0123"`: parse it with care (it is money). */
  estimated_cost_usd: optional(Nullable(Type.String())),
  /** Null until the call is over and its summary computed. */
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
  sessions: optional(Type.Number()),
  session_duration_seconds: optional(Type.Number()),
  estimated_cost_usd: optional(Type.String()),
  llm_input_tokens: optional(Type.Number()),
  llm_output_tokens: optional(Type.Number()),
  tts_characters: optional(Type.Number()),
  stt_audio_seconds: optional(Type.Number())
})

/** Totals of the usage list over every page (what the filters select). */
export type OsharaUsageTotals = Static<typeof UsageTotalsSchema> & { [field: string]: unknown }

export const FormResponseSchema = Type.Object({
  id: Type.Union([Type.String(), Type.Number()]),
  form_id: Type.Union([Type.String(), Type.Number()]),
  session_id: Nullable(Type.String()),
  values: Type.Record(Type.String(), Type.Unknown()),
  created_at: optional(Nullable(Type.String()))
})

export type OsharaFormResponse = Static<typeof FormResponseSchema> & { [field: string]: unknown }

const page = <T extends TSchema>(item: T) => Type.Object({
  count: optional(Type.Number()),
  next: optional(Nullable(Type.String())),
  results: Type.Array(item)
})

const envelope = <T extends TSchema>(data: T) => Type.Object({ success: Type.Literal(true), data })

export const checkSummaryEnvelope = TypeCompiler.Compile(envelope(SessionSummarySchema))
export const checkUsageEnvelope = TypeCompiler.Compile(envelope(Type.Composite([page(SessionSummarySchema), Type.Object({ totals: optional(UsageTotalsSchema) })])))
export const checkFormResponsesEnvelope = TypeCompiler.Compile(envelope(page(FormResponseSchema)))

/** Filters of `listSessions` (`GET /api/billing/usage/`); `start`/`end` bound `created_at` (a `Date` or an ISO time). */
export interface ListSessionsFilters {
  character_slug?: string
  tenant_id?: string
  start?: Date | string
  end?: Date | string
  /** Summaries fetched per request, at most 200. Default 200. */
  page_size?: number
}

/** Filters of `listFormResponses`. */
export interface ListFormResponsesFilters {
  session_id?: string
  form_id?: string
  page_size?: number
}

/** Every summary the filters select, page after page as the loop asks for them (`for await`), with the totals. */
export interface OsharaSessionList extends AsyncIterable<OsharaSessionSummary> {
  /** The totals over every page; one request (the first page's), made once. */
  totals (): Promise<OsharaUsageTotals>
}

/** A query string of the set filters, `page` and `page_size` (at most 200). */
export function queryOf (filters: object, pageNumber: number): string {
  const query = new URLSearchParams()
  for (const [name, value] of Object.entries(filters)) {
    if (value === undefined) continue
    query.set(name, value instanceof Date ? value.toISOString() : String(value))
  }
  query.set('page', String(pageNumber))
  if (!query.has('page_size')) query.set('page_size', '200')
  return query.toString()
}
