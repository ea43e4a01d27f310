import type { EmulatorEndOptions, EmulatorSession, EmulatorSessionSummary, EmulatorTranscriptLine } from './emulator-types.js'
import { isPlainObject } from './session-body.js'

/** Costs are kept in units of 1/10,000 USD: `estimated_cost_usd` has 4 decimals. */
const COST_UNITS = 10_000
const DECIMAL = /^\d+(\.\d+)?$/
const PROVIDER = 'emulator'

/** What a finalized summary says about a call. */
export interface CallDetails {
  durationSeconds: number
  transcript: EmulatorTranscriptLine[]
  costUnits: number
}

/** A finalized call: its details and when its summary was finalized (epoch ms). */
export interface FinalizedCall {
  details: CallDetails
  finalizedAt: number
}

/** What is wrong with `endSession` options (or a `/_emulator/sessions/{id}/end` body), or undefined. */
export function endOptionsError (options: unknown): string | undefined {
  if (!isPlainObject(options)) return 'Options must be a JSON object.'
  const { durationSeconds, transcript, costUsd, reason } = options
  if (durationSeconds !== undefined && !isAmount(durationSeconds)) return 'durationSeconds: must be a finite number >= 0.'
  if (transcript !== undefined && !(Array.isArray(transcript) && transcript.every(isLine))) {
    return "transcript: must be an array of { role: 'user' | 'assistant', text: string }."
  }
  if (costUsd !== undefined && !isAmount(costUsd) && !(typeof costUsd === 'string' && DECIMAL.test(costUsd))) {
    return 'costUsd: must be a number >= 0 or a decimal string.'
  }
  if (reason !== undefined && (typeof reason !== 'string' || reason === '')) return 'reason: must be a non-empty string.'
  return undefined
}

function isAmount (value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

function isLine (value: unknown): boolean {
  return isPlainObject(value) && (value.role === 'user' || value.role === 'assistant') && typeof value.text === 'string'
}

/** Whole seconds from the session's start to `endedAt` (epoch ms), never negative. */
export function elapsedSeconds (session: EmulatorSession, endedAt: number): number {
  return Math.max(0, Math.round((endedAt - Date.parse(session.created_at)) / 1000))
}

/** The details of a call ended with (valid) `options`; defaults for what they leave out. */
export function callDetails (options: EmulatorEndOptions, elapsed: number, greeting: string, costPerMinuteUsd: number): CallDetails {
  const durationSeconds = options.durationSeconds ?? elapsed
  const costUsd = options.costUsd === undefined ? (durationSeconds / 60) * costPerMinuteUsd : Number(options.costUsd)
  return {
    durationSeconds,
    transcript: options.transcript?.map(({ role, text }) => ({ role, text })) ?? defaultTranscript(greeting),
    costUnits: Math.round(costUsd * COST_UNITS)
  }
}

function defaultTranscript (greeting: string): EmulatorTranscriptLine[] {
  return [
    { role: 'assistant', text: greeting === '' ? 'Hello! How can I help you today?' : greeting },
    { role: 'user', text: 'Hi! What are your opening hours?' },
    { role: 'assistant', text: 'We are open from nine to five, Monday to Friday.' },
    { role: 'user', text: 'Great, thank you. Goodbye!' }
  ]
}

export function formatCost (units: number): string {
  return (units / COST_UNITS).toFixed(4)
}

export function costUnits (cost: string): number {
  return Math.round(Number(cost) * COST_UNITS)
}

const UNFINALIZED: CallDetails = { durationSeconds: 0, transcript: [], costUnits: 0 }

/** The billing summary of `session`; its figures are zero until `call` is finalized. */
export function summaryOf (session: EmulatorSession, call: FinalizedCall | undefined): EmulatorSessionSummary {
  const { durationSeconds, transcript, costUnits } = call?.details ?? UNFINALIZED
  return {
    id: session.summary_id,
    session_id: session.session_id,
    tenant_id: session.tenant_id,
    character_slug: session.character_slug,
    user: null,
    room_name: session.room_name,
    origin_url: session.origin_url,
    metadata: session.metadata ?? {},
    session_duration_seconds: durationSeconds,
    turn_count: transcript.length,
    interruption_count: 0,
    llm_input_tokens: tokens(transcript, 'user'),
    llm_output_tokens: tokens(transcript, 'assistant'),
    llm_model: 'emulator-llm',
    llm_provider: PROVIDER,
    stt_audio_seconds: durationSeconds,
    stt_provider: PROVIDER,
    tts_characters: transcript.reduce((sum, line) => line.role === 'assistant' ? sum + line.text.length : sum, 0),
    tts_provider: PROVIDER,
    estimated_cost_usd: formatCost(costUnits),
    finalized_at: call === undefined ? null : new Date(call.finalizedAt).toISOString(),
    recording_status: 'none',
    recording_url: null,
    recording_presigned_url: null,
    transcript: transcript.map(({ role, text }, index) => ({
      role,
      text,
      turn_index: index,
      // Seconds since the session started, turns spread evenly over the call.
      ts: Math.round((durationSeconds * 100 * index) / transcript.length) / 100
    })),
    transcript_text: transcript.map(({ role, text }) => `${role}: ${text}`).join('\n'),
    created_at: session.created_at
  }
}

function tokens (transcript: EmulatorTranscriptLine[], role: EmulatorTranscriptLine['role']): number {
  return transcript.reduce((sum, line) => line.role === role ? sum + Math.ceil(line.text.length / 4) : sum, 0)
}
