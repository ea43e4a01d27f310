/**
 * Upstream error bodies may echo what they were sent. Before an upstream detail goes on an
 * error (and from there into every log line that logs the error), the known secrets of the
 * call are replaced by `[redacted]` and the detail is cut to `MAX_DETAIL_LENGTH` characters.
 *
 * The secrets of a call: the API key; every `mcp_headers` value; every metadata value, nested
 * ones included (strings as they are, numbers as JSON writes them). Each is also searched in
 * its JSON-escaped form, the way a JSON error body quotes it. Metadata and `mcp_headers` values
 * shorter than `MIN_SECRET_LENGTH` characters, booleans and null are left alone: they cannot be
 * told apart from ordinary words and numbers of the detail. The API key is redacted whatever its length.
 */

export const REDACTED = '[redacted]'
/** Longest upstream detail kept, in characters; a longer one is cut and ends with `…`. */
export const MAX_DETAIL_LENGTH = 200
/** Shortest metadata or `mcp_headers` value redacted. */
export const MIN_SECRET_LENGTH = 4

/** Adds `value` and, when it differs, its JSON-escaped form (what a JSON body holds between quotes). */
function addForms (secrets: Set<string>, value: string): void {
  secrets.add(value)
  secrets.add(JSON.stringify(value).slice(1, -1))
}

/** Collects the leaves of a parsed JSON value: strings and numbers of at least `MIN_SECRET_LENGTH` characters. */
function collectValues (secrets: Set<string>, value: unknown): void {
  if (typeof value === 'string' || typeof value === 'number') {
    const text = String(value)
    if (text.length >= MIN_SECRET_LENGTH) addForms(secrets, text)
  } else if (value !== null && typeof value === 'object') {
    for (const item of Object.values(value)) collectValues(secrets, item)
  }
}

/**
 * The secrets of one call: the API key, and the metadata and `mcp_headers` values of the JSON
 * body that was sent (read from the body itself, so that values with `toJSON`, e.g. dates, are
 * found the way they were sent). Only called when a call failed with an upstream status.
 */
export function callSecrets (apiKey: string | undefined, sentBody: string | null): string[] {
  const secrets = new Set<string>()
  if (apiKey !== undefined) addForms(secrets, apiKey)
  if (sentBody !== null) {
    const body = JSON.parse(sentBody) as { metadata?: unknown, mcp_headers?: unknown }
    collectValues(secrets, body.mcp_headers)
    collectValues(secrets, body.metadata)
  }
  return [...secrets]
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Replaces every secret in `text` by `[redacted]` (longest first, so no secret is left half shown), then bounds its length. */
export function redactDetail (text: string, secrets: readonly string[]): string {
  let detail = text
  if (secrets.length > 0) {
    const longestFirst = [...secrets].sort((a, b) => b.length - a.length)
    detail = detail.replace(new RegExp(longestFirst.map(escapeRegExp).join('|'), 'g'), REDACTED)
  }
  return detail.length > MAX_DETAIL_LENGTH ? `${detail.slice(0, MAX_DETAIL_LENGTH)}…` : detail
}
