import { request } from 'undici'
import type { EmulatorSession, EmulatorToolCall, EmulatorToolReply } from './emulator-types.js'

/** Oshara's worker gives up on a tool after 10 s. */
const TOOL_TIMEOUT_MS = 10_000

/**
 * The metadata as a JSON store keeps it: a JSONB column orders an object's keys by length, then
 * bytewise, at every level. What the app gets back is the same data in another key order.
 */
export function storedMetadata (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(storedMetadata)
  if (value === null || typeof value !== 'object') return value
  const keys = Object.keys(value).sort((a, b) => Buffer.byteLength(a) - Buffer.byteLength(b) || Buffer.compare(Buffer.from(a), Buffer.from(b)))
  return Object.fromEntries(keys.map((key) => [key, storedMetadata((value as Record<string, unknown>)[key])]))
}

/**
 * POSTs as Oshara's agent worker does: the arguments plus `_session: { session_id, metadata }`,
 * with the metadata the session was minted with (as stored), and the tool's headers.
 */
export async function callTool (session: EmulatorSession | undefined, sessionId: string, call: EmulatorToolCall): Promise<EmulatorToolReply> {
  if (session === undefined) throw new Error(`callTool: the emulator minted no session ${JSON.stringify(sessionId)}`)
  const body = { ...call.args, _session: { session_id: session.session_id, metadata: storedMetadata(session.metadata ?? {}) } }
  const response = await request(call.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'oshara-agent-worker (emulator)', ...call.headers },
    body: JSON.stringify(body),
    headersTimeout: TOOL_TIMEOUT_MS,
    bodyTimeout: TOOL_TIMEOUT_MS
  })
  const text = await response.body.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {}
  return { status: response.statusCode, body: parsed }
}
