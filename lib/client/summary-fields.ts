import type { TSchema } from '@sinclair/typebox'
import type { ValueError } from '@sinclair/typebox/errors'
import type { OsharaLogger } from './options.js'
import { checkSummary, type OsharaSessionSummary } from './summaries.js'

/**
 * Session tracking decides on `session_id` and `finalized_at` alone: a summary whose other fields
 * fail their check is passed on as sent, and each such field is logged once per process at warn,
 * so that a field Oshara changes never holds a concurrency slot.
 */

/** Field names (array indices as `[]`, e.g. `transcript[].ts`) already logged by this process. */
const warned = new Set<string>()

/** `/transcript/0/ts` → `transcript[].ts`. */
function fieldName (path: string): string {
  return path.slice(1).split('/').map((part) => /^\d+$/.test(part) ? '[]' : `.${part}`).join('').replace(/^\./, '')
}

const TYPE_WORDS: Record<string, string> = { array: 'an array', object: 'an object' }

/** What a schema of the summary accepts, in words: `number or null`, `string`, `an array`, ... */
function expected (schema: TSchema): string {
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as TSchema[]).map(expected).join(' or ')
  return TYPE_WORDS[schema.type as string] ?? schema.type as string
}

/**
 * A union's error (`Nullable(Array(...))`) stands for its branches' errors: the deepest one names
 * the field that is wrong (`transcript[].ts`, not `transcript`).
 */
function innermost (error: ValueError): ValueError {
  let deepest = error
  for (const branch of error.errors) {
    // A failing branch has at least one error.
    const inner = innermost(branch.First() as ValueError)
    if (inner.path.length > deepest.path.length) deepest = inner
  }
  return deepest
}

/** Logs, once per field name per process, each field of `summary` that fails its documented check. */
export function warnOfOddFields (summary: OsharaSessionSummary, log: OsharaLogger): void {
  const sessionId = summary.session_id
  if (checkSummary.Check(summary)) return
  for (const found of checkSummary.Errors(summary) as Iterable<ValueError>) {
    const error = innermost(found)
    const field = fieldName(error.path)
    if (warned.has(field)) continue
    warned.add(field)
    log.warn({ field, expected: expected(error.schema), session_id: sessionId },
      `oshara: session summary field ${field} is not ${expected(error.schema)} as documented; passed on as sent (tracking does not use it)`)
  }
}
