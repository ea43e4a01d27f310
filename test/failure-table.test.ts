import { readFileSync } from 'node:fs'
import t from 'tap'
import * as api from '../lib/index.js'
import { FAILURES, type OsharaErrorCode } from '../lib/failures.js'

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
    t.equal(cell?.includes('Retry-After'), FAILURES[code].retryAfter, `${code}: Retry-After`)
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
