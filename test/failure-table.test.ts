import { readFileSync } from 'node:fs'
import t from 'tap'
import * as api from '../lib/index.js'
import { CLASS_OF, failure, messageOf } from '../lib/errors.js'
import { DEFAULT_RETRY_AFTER_MS, FAILURES, type FailureCase, type OsharaErrorCode, RETRY_AFTER, type RetryAfterRule } from '../lib/failures.js'

// One row per error code decides its status, retry, breaker count and Retry-After; the README's
// error table and the exported classes must agree with it.

const codes = Object.keys(FAILURES) as OsharaErrorCode[]
/** Codes that are never a reply of the routes: register-time and app-made errors. */
const NOT_REPLIED = new Set<OsharaErrorCode>(['FST_OSHARA_INVALID_OPTIONS', 'FST_OSHARA_ERROR'])

/** `| situation | status | code |` rows of the README's "### Errors" table: code -> status cell. */
function readmeErrorTable (): Map<string, string> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('### Errors'), readme.indexOf('\n## ', readme.indexOf('### Errors')))
  const rows = new Map<string, string>()
  for (const line of section.split('\n')) {
    const cells = line.split(/(?<!\\)\|/).map((cell) => cell.trim())
    const code = /`(FST_OSHARA_[A-Z_]+)`/.exec(cells[3] ?? '')?.[1]
    if (code !== undefined) rows.set(code, cells[2] as string)
  }
  return rows
}

t.test('the README error table has one row per replied code, with the row\'s status and Retry-After', async (t) => {
  const table = readmeErrorTable()
  for (const code of codes.filter((code) => !NOT_REPLIED.has(code))) {
    const cell = table.get(code)
    t.ok(cell, `${code} is in the README`)
    t.match(cell, new RegExp(`^${FAILURES[code].status}\\b`), `${code}: status`)
    t.equal(cell?.includes('Retry-After'), FAILURES[code].retryAfter !== false, `${code}: Retry-After`)
    if (FAILURES[code].retryAfter === 'when-named') t.match(cell, /Retry-After` when Oshara asked/, `${code}: Retry-After only when Oshara named a delay`)
  }
  for (const code of table.keys()) t.ok(code in FAILURES, `${code} in the README is a known code`)
})

t.test('every exported error class carries its row\'s code and status', async (t) => {
  const classes = Object.values(api).filter((value): value is typeof api.OsharaError =>
    typeof value === 'function' && (value === api.OsharaError || value.prototype instanceof api.OsharaError))
  t.equal(classes.length, codes.length, 'one class per code')
  for (const ErrorClass of classes) {
    const row = FAILURES[ErrorClass.code]
    t.ok(row, ErrorClass.name)
    t.equal(ErrorClass.statusCode, row.status, `${ErrorClass.name}.statusCode`)
    const error = ErrorClass === api.OsharaCallbackError ? new api.OsharaCallbackError('metadata', undefined) : new ErrorClass('x')
    t.equal(error.statusCode, row.status)
    t.equal(error.outcome, row.outcome, `${ErrorClass.name}: default outcome`)
  }
})

/** Codes the plugin never reports itself: only the app throws them, with its own message. */
const MADE_BY_THE_APP = new Set<OsharaErrorCode>(['FST_OSHARA_ERROR', 'FST_OSHARA_TOOL_REFUSED'])
/** Rules that always give a delay, for the route to send as `Retry-After`. */
const ALWAYS_A_DELAY = new Set<RetryAfterRule>(['from-answer-else-default', 'default', 'one-second', 'breaker-cooldown', 'until-slot-frees', 'until-window-reset'])

t.test('every code has its class, and a message and a Retry-After rule per situation, consistent with its retryAfter flag', async (t) => {
  for (const code of codes) {
    t.equal(CLASS_OF[code].code, code, `${code}: CLASS_OF names its class`)
    const cases = Object.entries(FAILURES[code].cases) as Array<[string, FailureCase]>
    t.equal(cases.length === 0, MADE_BY_THE_APP.has(code), `${code}: situations unless only the app throws it`)
    for (const [situation, { message, retryAfterMs }] of cases) {
      t.match(message, /\S/, `${code} ${situation}: a message`)
      t.ok(retryAfterMs in RETRY_AFTER, `${code} ${situation}: a Retry-After rule`)
      if (FAILURES[code].retryAfter === false) t.notOk(ALWAYS_A_DELAY.has(retryAfterMs), `${code} ${situation}: no delay the reply would not send`)
      if (FAILURES[code].retryAfter === 'when-named') t.equal(retryAfterMs, 'from-answer', `${code} ${situation}: only the delay Oshara named`)
    }
    if (FAILURES[code].retryAfter === true) {
      t.ok(cases.some(([, { retryAfterMs }]) => ALWAYS_A_DELAY.has(retryAfterMs)), `${code}: a situation with a delay for Retry-After`)
    }
  }
})

t.test('the Retry-After rules: the default of 5 s, at least 1 s for what frees by itself, the upstream\'s delay when it named one', async (t) => {
  t.equal(DEFAULT_RETRY_AFTER_MS, 5000)
  t.equal(failure('FST_OSHARA_UPSTREAM_LIMIT', 'answered').retryAfterMs, DEFAULT_RETRY_AFTER_MS)
  t.equal(failure('FST_OSHARA_UPSTREAM_LIMIT', 'answered', { serverDelayMs: 12_000 }).retryAfterMs, 12_000)
  t.equal(failure('FST_OSHARA_UPSTREAM_ERROR', 'answered').retryAfterMs, undefined)
  t.equal(failure('FST_OSHARA_UPSTREAM_ERROR', 'answered', { serverDelayMs: 9000 }).retryAfterMs, 9000)
  t.equal(failure('FST_OSHARA_UNAVAILABLE', 'store-down').retryAfterMs, DEFAULT_RETRY_AFTER_MS)
  t.equal(failure('FST_OSHARA_UNAVAILABLE', 'client-closed').retryAfterMs, undefined)
  t.equal(failure('FST_OSHARA_UNAVAILABLE', 'circuit-open', { waitMs: 7500 }).retryAfterMs, 7500)
  t.equal(failure('FST_OSHARA_SESSION_LIMIT', 'reached', { scope: 'key', waitMs: 0 }).retryAfterMs, 1000)
  t.equal(failure('FST_OSHARA_SESSION_LIMIT', 'reached', { scope: 'key', waitMs: 3_600_000, lookAgainWithinMs: 120_000 }).retryAfterMs, 120_000)
  t.equal(failure('FST_OSHARA_QUOTA_EXCEEDED', 'used-up', { waitMs: 10, words: { budget: 'calls', when: 'today' } }).retryAfterMs, 1000)
  t.equal(failure('FST_OSHARA_IDEMPOTENCY_IN_PROGRESS', 'in-flight').retryAfterMs, 1000)
})

t.test('a situation decides the message, the outcome and the fix, with its words filled in', async (t) => {
  t.match(failure('FST_OSHARA_UNAVAILABLE', 'unreachable', { words: { baseUrl: 'https://api.example' } }), {
    message: 'The voice service is unreachable; try again shortly',
    outcome: 'not_created',
    fix: /^Check that baseUrl \(https:\/\/api\.example\) is the Oshara API root/
  })
  t.equal(failure('FST_OSHARA_UNAVAILABLE', 'connection-failed', { words: { baseUrl: 'x' } }).outcome, 'unknown')
  t.equal(failure('FST_OSHARA_ABORTED', 'before-mint').outcome, 'not_created')
  t.equal(failure('FST_OSHARA_ABORTED', 'not-sent').outcome, 'not_created')
  t.equal(failure('FST_OSHARA_ABORTED', 'during-call').outcome, 'unknown')
  t.equal(failure('FST_OSHARA_TIMEOUT', 'not-sent').outcome, 'not_created')
  t.equal(failure('FST_OSHARA_TIMEOUT', 'attempt').outcome, 'unknown')
  t.equal(messageOf('FST_OSHARA_FIELD_NOT_ALLOWED', 'agent', { agent: 'x', field: 'agent' }), 'The agent "x" is not offered (field "agent").')
  // A placeholder without a word stays as written: the dashboard path names the slug.
  t.match(failure('FST_OSHARA_ORIGIN_FORBIDDEN', 'answered', { words: { origin: 'https://a.example' } }).fix, /^Add https:\/\/a\.example to .*\/api\/ai-characters\/\{slug\}\//)
})
