export interface EmulatorCharacter {
  slug: string
  /** Origins (scheme://host[:port]) allowed to mint sessions for this character. */
  allowed_origins: string[]
  system_prompt?: string
  greeting?: string
  language?: string
  /** Concurrent sessions this character may have; past it the emulator answers 429. */
  max_concurrent_sessions?: number
  /** An inactive character answers 404 like an unknown slug. Default true. */
  active?: boolean
  /** Its appearance (`GET /api/agents/{slug}/appearance/`): display name. Default: the slug. */
  name?: string
  /** Language codes offered by its widget. Default: its `language`, else `['en']`. */
  languages?: string[]
  /** Hard limit of a call in seconds, 0 for none (appearance only: the emulator does not end calls). Default 0. */
  max_call_seconds?: number
  /** Forms of its appearance. Default none. */
  forms?: EmulatorForm[]
  /** The tenant its sessions belong to (`tenant_id` of their summaries). Default `tenant_local`. */
  tenant_id?: string
}

/**
 * An API key that reads only part of the account: the sessions and form responses of one
 * tenant and/or of some characters. A session outside it answers 404 as if it did not exist, the
 * form responses of a character outside it 403 (only its creator may read them), and usage lists
 * leave it out. Scoping limits reads only: the key is valid on the session endpoint.
 */
export interface EmulatorApiKey {
  key: string
  tenant_id?: string
  /** Character slugs it may read. */
  characters?: string[]
}

export interface EmulatorOptions {
  characters: EmulatorCharacter[]
  /**
   * Valid `X-API-Key` values. The billing and form-response endpoints require one; the session
   * endpoint answers 401 to a key that is sent but not listed (and to none at all when
   * `requireApiKey`). A plain string reads everything; an `EmulatorApiKey` reads its scope.
   */
  apiKeys?: Array<string | EmulatorApiKey>
  /** The session endpoint refuses calls without a valid key. Default false. */
  requireApiKey?: boolean
  /** `expires_in_seconds` of minted sessions and the token `exp`. Default 3600. */
  tokenTtlSeconds?: number
  /** `livekit_url` in replies. Default `ws://127.0.0.1:7880`. */
  livekitUrl?: string
  /** LiveKit API key (`iss` claim). Default `devkey`. */
  livekitApiKey?: string
  /** HS256 secret for tokens. Default `secret`. */
  livekitApiSecret?: string
  /**
   * Time between the end of a call and its summary being finalized (`finalized_at` set, with
   * duration, transcript and cost): Oshara computes it after the room closes. Default 0.
   */
  finalizeDelayMs?: number
  /** Rate of the default `estimated_cost_usd` of an ended call, in USD per minute. Default 0.05. */
  costPerMinuteUsd?: number
  /** Keep every request in `requests`. Default true; false for long runs (benchmarks, a demo left open). */
  record?: boolean
  /** Default 0: a free port. */
  port?: number
  /** Default `127.0.0.1`. An IPv6 address (`::1`) is bracketed in `url`. */
  host?: string
}

/**
 * The requests a fault applies to: `session` the session POST, `billing` the summary GET
 * (`/api/billing/sessions/{id}/`), `usage` the usage GET, `form-responses` the form-response GET,
 * `appearance` the appearance GET.
 */
export type EmulatorFaultTarget = 'session' | 'billing' | 'usage' | 'form-responses' | 'appearance'

/**
 * A fault applied to the next request(s) of its `target`. Fields combine: `delayMs` waits before
 * anything else; then exactly one of `reset`, `status`, `malformed`, `oversizedBytes`,
 * `slowBodyMs` decides the answer (in that order of precedence).
 */
export interface EmulatorFault {
  /** Default `session`. Each request takes the first queued fault of its target. */
  target?: EmulatorFaultTarget
  /** Wait this long before answering (slow headers). */
  delayMs?: number
  /** Destroy the connection after reading the request, without answering. */
  reset?: boolean
  /** Answer with this status (and `body`, `headers`) instead of handling the request. */
  status?: number
  /** Body for `status`: an object is sent as JSON, a string as is. Default `{"detail": "..."}`. 204 and 304 carry none. */
  body?: unknown
  /** Extra response headers, e.g. `{ 'retry-after': '1' }`. */
  headers?: Record<string, string>
  /** Answer 200 with a body that is not JSON. */
  malformed?: boolean
  /** Answer 200 with a JSON body of (at least) this many bytes. */
  oversizedBytes?: number
  /**
   * Send the answer (the normal one: 200 with a session for a valid request) with its
   * `content-length`, but only half the body; wait this long, then send the rest.
   */
  slowBodyMs?: number
}

export interface RecordedRequest {
  /** 1-based order of arrival. */
  seq: number
  method: string
  /** Path and query, as received. */
  url: string
  /** Lower-cased header names. */
  headers: Record<string, string | string[] | undefined>
  /** Parsed JSON body, or undefined when empty or not JSON. */
  body: unknown
  rawBody: string
  /** 1-based id of the TCP connection it arrived on. */
  connection: number
  /** Status answered, undefined while pending or when reset/aborted. */
  status?: number
  /** The client closed the connection before the answer was complete. */
  aborted: boolean
  /** A fault was applied to it. */
  fault?: EmulatorFault
}

export interface EmulatorSession {
  session_id: string
  character_slug: string
  room_name: string
  participant_identity: string
  language?: string
  metadata?: Record<string, unknown>
  created_at: string
  /** epoch ms */
  expiresAt: number
  /** Set by `endSession` (a session whose token expired is over too, but stays `false`). */
  ended: boolean
  /** ISO time the call ended: when `endSession` was called, or the token expiry if that came first. */
  ended_at?: string
  /** Why `endSession` ended it. */
  end_reason?: EmulatorEndReason
  /** The summary's `id`: a row number. */
  summary_id: number
  tenant_id: string
  /** The request's `origin_url`, else its `Origin` header. */
  origin_url: string
  /** The greeting it was minted with (`''` for none); the default transcript opens with it. */
  greeting: string
}

/** Why a call ended. The emulator only stores it (`EmulatorSession.end_reason`). */
export type EmulatorEndReason = 'agent_hangup' | 'client_left' | 'tab_crashed' | (string & {})

export interface EmulatorTranscriptLine {
  role: 'user' | 'assistant'
  text: string
}

/**
 * How a call ended, as `endSession(id, options)` and `POST /_emulator/sessions/{id}/end` take it.
 * Defaults: the real elapsed time; a transcript of four lines opening with the session's greeting;
 * a cost of `costPerMinuteUsd` (0.05) per minute of duration; reason `client_left`.
 */
export interface EmulatorEndOptions {
  /** A finite number >= 0. */
  durationSeconds?: number
  transcript?: EmulatorTranscriptLine[]
  /** A number >= 0 or a decimal string (`"0.0123"`); shown rounded to 4 decimals. */
  costUsd?: number | string
  reason?: EmulatorEndReason
}

/** A line of a summary's transcript. */
export interface EmulatorTranscriptEntry extends EmulatorTranscriptLine {
  /** 0-based. */
  turn_index: number
  /** Seconds since the session started (two decimals), turns spread evenly over the call. */
  ts: number
}

/**
 * `data` of `GET /api/billing/sessions/{id}/`. Until `finalized_at` is set (while the call runs,
 * and for `finalizeDelayMs` after it ends) the figures are zero: duration, counts, tokens,
 * characters, audio seconds, cost `"0.0000"`, an empty transcript. Once finalized:
 * `turn_count` = transcript lines, `llm_input_tokens`/`llm_output_tokens` = characters of the
 * user/assistant lines / 4 (rounded up, per line), `tts_characters` = characters of the assistant
 * lines, `stt_audio_seconds` = the duration. A call whose token expires is finalized at its expiry.
 */
export interface EmulatorSessionSummary {
  /** A row number, not the session id. */
  id: number
  session_id: string
  tenant_id: string
  character_slug: string
  /** Always null: sessions minted by Origin have no Oshara user. */
  user: null
  room_name: string
  /** The session request's `origin_url`, else its `Origin` (null in the type: Oshara may leave it out). */
  origin_url: string | null
  /** `{}` when minted without. */
  metadata: Record<string, unknown>
  session_duration_seconds: number
  turn_count: number
  /** Always 0. */
  interruption_count: number
  llm_input_tokens: number
  llm_output_tokens: number
  /** `emulator-llm`. */
  llm_model: string
  /** `emulator` (so are `stt_provider` and `tts_provider`). */
  llm_provider: string
  stt_audio_seconds: number
  stt_provider: string
  tts_characters: number
  tts_provider: string
  /** A decimal string with 4 decimals, e.g. `"0.0750"`. */
  estimated_cost_usd: string
  /** ISO time; null until the call is over and its summary computed. */
  finalized_at: string | null
  /** Always `none`: the emulator records no audio (the URLs are null). */
  recording_status: string
  recording_url: string | null
  recording_presigned_url: string | null
  transcript: EmulatorTranscriptEntry[]
  /** The transcript as `role: text` lines joined by `\n`; `''` while empty. */
  transcript_text: string
  created_at: string
}

/**
 * An item of `GET /api/agents/{slug}/form-responses/`, which answers a bare JSON array of them, not
 * wrapped and not paginated (filters `session_id`, `form_id`). `POST` there with
 * `{ form_id, session_id, values }` records one: 201 with it as `data`; 400 for a bad body, 404 when
 * the session is not one of that character's. A key outside the character's scope gets 403.
 */
export interface EmulatorFormResponse {
  /** A row number. */
  id: number
  form_id: string
  session_id: string
  values: Record<string, unknown>
  created_at: string
}

/**
 * `data` of `GET /api/billing/usage/`: the totals over every page the filters select, and one page
 * of summaries in `sessions.data` (ordered by `created_at`). Filters: `character_slug`, `tenant_id`,
 * `start` <= `created_at` <= `end` (ISO times; another value answers 400). Paging: `page` (1-based,
 * default 1; past the last page 404; not a positive integer 400), `page_size` (default 50; 1 to 200,
 * else 400). `sessions` has no other key: Oshara documents none.
 */
export interface EmulatorUsage {
  total_sessions: number
  total_llm_input_tokens: number
  total_llm_output_tokens: number
  total_stt_audio_seconds: number
  total_tts_characters: number
  /** A decimal string with 4 decimals. */
  total_estimated_cost_usd: string
  sessions: { data: EmulatorSessionSummary[] }
}

/** A form of a character's appearance; `submit_url` null: the widget posts to Oshara's form-responses endpoint. */
export interface EmulatorForm {
  id: string
  title: string
  submit_url: string | null
  fields: Array<Record<string, unknown>>
}

/**
 * `GET /api/agents/{slug}/appearance/`: public, gated by `allowed_origins` (403), 404 for an unknown
 * or inactive slug, not wrapped. The documented fields; branding is the documented defaults.
 */
export interface EmulatorAppearance {
  name: string
  subtitle: string
  logo_url: string
  start_button_text: string
  theme: Record<string, string>
  dimensions: Record<string, number>
  labels: Record<string, string>
  languages: Array<{ code: string, label: string, native_label: string }>
  default_language: string
  max_call_seconds: number
  terms_url: string
  show_audio_settings: boolean
  forms: EmulatorForm[]
}

/**
 * Every billing and form-response answer: `{ success: true, message: 'OK', data, errors: null }`
 * (`message: 'Created'` for a recorded form response), or
 * `{ success: false, message, data: null, errors: { detail: message } }` with 400, 401 or 404.
 */
export interface EmulatorEnvelope<T> {
  success: boolean
  message: string
  data: T | null
  errors: { detail: string } | null
}

/** A tool call as Oshara's agent worker makes it (`OsharaEmulator.callTool`). */
export interface EmulatorToolCall {
  /** The tool's `config.url` on the character, e.g. `http://127.0.0.1:3000/oshara/tools/lookup_order`. */
  url: string
  /** The LLM's arguments. Default `{}`. */
  args?: Record<string, unknown>
  /** The tool's static `config.headers`, e.g. `{ 'x-oshara-secret': '...' }`. */
  headers?: Record<string, string>
}

/** The app's answer to a tool call. */
export interface EmulatorToolReply {
  status: number
  /** The JSON body, or the text when it is not JSON. */
  body: unknown
}

export interface OsharaEmulator {
  /** Base URL, e.g. `http://127.0.0.1:41234`; pass it as the plugin's `baseUrl`. */
  readonly url: string
  readonly port: number
  /** Every request received, in order. */
  readonly requests: RecordedRequest[]
  /** TCP connections accepted so far. */
  readonly connectionCount: number
  /** Sessions minted so far (ended ones included). */
  readonly sessions: ReadonlyMap<string, EmulatorSession>
  /** Active (not ended, not expired) sessions, optionally of one character. */
  activeSessions (slug?: string): number
  /** Queue a fault for the next `times` (default 1) requests of its `target` (default: session requests). */
  fault (fault: EmulatorFault, times?: number): void
  /** Drop queued faults. */
  clearFaults (): void
  /**
   * End a call as Oshara would see it: frees its concurrency slot, and its summary is finalized
   * `finalizeDelayMs` later. False when unknown or already ended. Throws a TypeError for invalid
   * options. A session whose token expired can still be ended: the options replace the generated
   * details, the end time stays the expiry.
   */
  endSession (sessionId: string, options?: EmulatorEndOptions): boolean
  /** Forget recorded requests (sessions and faults stay). */
  clearRequests (): void
  /** Resolves once `predicate` holds for some recorded request, or rejects after `timeoutMs` (default 2000). */
  waitForRequest (predicate: (request: RecordedRequest) => boolean, timeoutMs?: number): Promise<RecordedRequest>
  /**
   * Call an app's tool as Oshara's agent worker does during the session's call: POST `url` with
   * the arguments plus `_session: { session_id, metadata }` (the metadata the session was minted
   * with, keys in the order a JSON store keeps them) and `headers`. Rejects for a session this
   * emulator did not mint; an ended session can still be used (a late call).
   */
  callTool (sessionId: string, call: EmulatorToolCall): Promise<EmulatorToolReply>
  close (): Promise<void>
}
