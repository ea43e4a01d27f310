import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { MemoryQuotaStore } from '../lib/quota/memory-quota-store.js'
import { MemorySessionStore } from '../lib/limits/memory-store.js'
import { idempotencyStoreContract, quotaStoreContract, sessionStoreContract } from '../lib/testing.js'

// Each store interface states its contract as a state table whose rows cite, by id, the cases of the
// exported contract suite that check them, listed under the table by name. These tests keep the
// tables and the suites in step: every cited case exists, every case is cited, every row cites one.

interface StateTable {
  /** Case ids cited by each row of the table, by the row's first cell. */
  rows: Map<string, string[]>
  /** Case names by id, as listed under the table. */
  cases: Map<string, string>
}

/** The state table in the doc comment right above `export interface <name>` in `file`. */
function stateTable (file: string, name: string): StateTable {
  const source = readFileSync(new URL(`../lib/${file}`, import.meta.url), 'utf8')
  const end = source.indexOf(`*/\nexport interface ${name} `)
  const doc = source.slice(source.lastIndexOf('/**', end), end).split('\n').map((line) => line.replace(/^\s*\*\s?/, ''))
  const rows = new Map<string, string[]>()
  for (const line of doc.filter((line) => line.startsWith('| ') && !line.startsWith('| call ') && !line.startsWith('| ---'))) {
    const cells = line.split(' | ')
    rows.set(cells[0]?.slice(2) ?? '', (cells.at(-1) ?? '').replace(/ \|$/, '').split(' ').filter(Boolean))
  }
  const cases = new Map<string, string>()
  for (const line of doc) {
    const listed = /^- ([A-Z]\d+): "(.+)"$/.exec(line)
    if (listed !== null) cases.set(listed[1] as string, listed[2] as string)
  }
  return { rows, cases }
}

function checkTable (t: Test, table: StateTable, caseNames: string[], what: string): void {
  t.ok(table.rows.size >= 4, `${what}: a table with a row per call`)
  t.same([...table.cases.values()].sort(), [...caseNames].sort(), `${what}: the listed cases are the suite's`)
  const cited = new Set<string>()
  for (const [row, ids] of table.rows) {
    t.ok(ids.length > 0, `${what}: row ${row} cites a case`)
    for (const id of ids) {
      t.ok(table.cases.has(id), `${what}: row ${row} cites ${id}, which is listed`)
      cited.add(id)
    }
  }
  t.same([...table.cases.keys()].filter((id) => !cited.has(id)), [], `${what}: every listed case checks a row`)
}

t.test('SessionStore and TrackingStore: each row of their state tables is checked by cases of sessionStoreContract, and every case checks one', async (t) => {
  const names = sessionStoreContract({ createStore: () => new MemorySessionStore() }).map(({ name }) => name)
  checkTable(t, stateTable('limits/store.ts', 'SessionStore'), names.filter((name) => !name.startsWith('tracking: ')), 'SessionStore')
  checkTable(t, stateTable('limits/store.ts', 'TrackingStore'), names.filter((name) => name.startsWith('tracking: ')), 'TrackingStore')
})

t.test('QuotaStore: each row of its state table is checked by cases of quotaStoreContract, and every case checks one', async (t) => {
  checkTable(t, stateTable('quota/quota-store.ts', 'QuotaStore'), quotaStoreContract({ createStore: () => new MemoryQuotaStore() }).map(({ name }) => name), 'QuotaStore')
})

t.test('IdempotencyStore: each row of its state table is checked by cases of idempotencyStoreContract, and every case checks one', async (t) => {
  checkTable(t, stateTable('idempotency/idempotency-store.ts', 'IdempotencyStore'), idempotencyStoreContract({ createStore: () => new MemorySessionStore() }).map(({ name }) => name), 'IdempotencyStore')
})
