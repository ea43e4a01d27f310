// Profiles servers under load: `node --import tsx bench/profile.ts [--variants plugin,undici,plugin-memory]`.
// Each server runs with `node --cpu-prof`; after a warmup it takes --duration s of load, and
// only the samples of that window count. The first variant is summarised by self time (the
// plugin's lib/ vs Fastify vs undici vs Node and V8); each later one is compared with it per
// request. Writes bench/.out/profiles/<variant>.cpuprofile (open them in Chrome DevTools) and
// bench/.out/profile-summary.md. --log: the servers log at info to bench/.out/profiles/<variant>.log.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type Child, load, OUT_DIR, ROOT, SHORT_LABELS, startChild, VARIANT_LABELS, VARIANTS, type Variant } from './harness.js'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

interface Row {
  key: string
  name: string
  category: string
  location: string
  micros: number
}

interface Profiled {
  variant: Variant
  reqPerSec: number
  p50: number
  p99: number
  requests: number
  /** Server CPU time per request over the window (all threads, `process.cpuUsage`). */
  cpuPerRequest: number
  self: Row[]
  inclusive: Row[]
  window: number
  busy: number
  samples: number
}

const { values: flags } = parseArgs({
  options: {
    variants: { type: 'string', default: 'plugin,undici' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    interval: { type: 'string', default: '250' },
    top: { type: 'string', default: '25' },
    log: { type: 'boolean', default: false }
  }
})

const LIB = 'plugin (lib/)'
const CATEGORIES: Array<[RegExp, string]> = [
  [/^file:\/\/.*\/lib\/.*\.ts$/, LIB],
  [/node_modules\/undici\//, 'undici'],
  [/node_modules\/(pino|sonic-boom|pino-std-serializers|thread-stream|fast-redact|quick-format-unescaped|on-exit-leak-free)\//, 'pino'],
  [/node_modules\/@sinclair\/typebox\//, 'typebox'],
  [/node_modules\/(ioredis|@ioredis|redis-parser|denque|cluster-key-slot|standard-as-callback)\//, 'ioredis'],
  [/node_modules\/(fastify|@fastify|find-my-way|avvio|fast-json-stringify|ajv|fast-uri|fast-querystring|light-my-request|process-warning|abstract-logging|rfdc|toad-cache|secure-json-parse|fast-decode-uri-component|safe-regex2|ret|json-schema-ref-resolver|fastify-plugin)\//, 'fastify'],
  [/node_modules\/(tsx|esbuild|get-tsconfig)\//, 'tsx loader'],
  [/\/bench\//, 'bench route code']
]
/** Native bindings that write to or read from sockets: the loopback TCP stack runs inside them. */
const SOCKET_CALLS = new Set(['writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString', 'readStart', 'readStop', 'shutdown', 'close', 'onStreamRead'])

function categorize (frame: CallFrame): string {
  const { url, functionName } = frame
  if (functionName === '(idle)') return 'idle'
  if (functionName === '(garbage collector)') return 'V8: garbage collector'
  if (functionName === '(program)') return 'V8: (program), native or unattributed'
  if (functionName === '(root)') return 'V8: (root)'
  for (const [pattern, category] of CATEGORIES) if (pattern.test(url)) return category
  if (url.startsWith('node:')) return `node core (${url.slice(5).split('/')[0] as string})`
  if (url === '' && SOCKET_CALLS.has(functionName)) return 'native socket I/O (syscalls, loopback TCP)'
  if (url === '') return 'V8 builtins and generated code (JSON, RegExp, compiled validators)'
  return 'other (wasm: undici llhttp)'
}

function locate (frame: CallFrame): string {
  if (frame.url === '') return ''
  const path = frame.url.replace(/^file:\/\//, '').replace(ROOT, '')
  // tsx hands V8 its transform of a TypeScript file; the line numbers of that are not the source's.
  return path.endsWith('.ts') ? path : `${path}:${frame.lineNumber + 1}`
}

function percent (micros: number, total: number): string {
  return `${(micros / total * 100).toFixed(1)}%`
}

/** Self and inclusive time per function over the samples between `from` and `to` (monotonic µs). */
function analyse (profile: CpuProfile, from: number, to: number): Pick<Profiled, 'self' | 'inclusive' | 'window' | 'busy' | 'samples'> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const keyOf = (frame: CallFrame): string => `${frame.functionName || '(anonymous)'} ${frame.url}:${frame.lineNumber}`
  const self = new Map<string, Row>()
  const inclusive = new Map<string, Row>()
  const add = (table: Map<string, Row>, frame: CallFrame, micros: number): void => {
    const key = keyOf(frame)
    const row = table.get(key)
    if (row !== undefined) row.micros += micros
    else table.set(key, { key, name: frame.functionName || '(anonymous)', category: categorize(frame), location: locate(frame), micros })
  }
  let time = profile.startTime
  let window = 0
  let idle = 0
  let samples = 0
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i] ?? 0
    if (time < from || time > to) continue
    const duration = profile.timeDeltas[i + 1] ?? Number(flags.interval)
    const node = byId.get(profile.samples[i] as number) as ProfileNode
    window += duration
    samples++
    if (node.callFrame.functionName === '(idle)') {
      idle += duration
      continue
    }
    add(self, node.callFrame, duration)
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = (byId.get(id) as ProfileNode).callFrame
      const key = keyOf(frame)
      if (seen.has(key)) continue
      seen.add(key)
      add(inclusive, frame, duration)
    }
  }
  const sort = (table: Map<string, Row>): Row[] => [...table.values()].sort((a, b) => b.micros - a.micros)
  return { self: sort(self), inclusive: sort(inclusive), window, busy: window - idle, samples }
}

function byCategory (rows: Row[]): Map<string, number> {
  const totals = new Map<string, number>()
  for (const row of rows) totals.set(row.category, (totals.get(row.category) ?? 0) + row.micros)
  return totals
}

/** µs of server CPU per request that `micros` of busy main-thread samples stand for. */
function perRequest (p: Profiled, micros: number): number {
  return micros / p.busy * p.cpuPerRequest
}

async function profileOne (variant: Variant, emulator: Child, profileDir: string): Promise<Profiled> {
  const profilePath = join(profileDir, `${variant}.cpuprofile`)
  // tsx's loader runs on a worker thread, which --cpu-prof profiles too: each thread gets its own
  // file in a fresh directory, and the main thread's (thread id 0) is the one kept.
  const rawDir = join(profileDir, `raw-${variant}`)
  await rm(rawDir, { recursive: true, force: true })
  await mkdir(rawDir, { recursive: true })
  const connections = Number(flags.connections)
  const logArgs = flags.log ? [join(profileDir, `${variant}.log`)] : []
  const server = await startChild(variant, 'bench/servers.ts', [variant, ...logArgs], {
    env: { OSHARA_URL: emulator.url },
    nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${rawDir}`, `--cpu-prof-interval=${flags.interval as string}`]
  })
  await load(server.url, { connections, duration: Number(flags.warmup) })
  await emulator.reset()
  const before = await server.stats()
  const result = await load(server.url, { connections, duration: Number(flags.duration) })
  const after = await server.stats()
  await server.close()
  const mainThread = (await readdir(rawDir)).find((name) => name.includes(`.${server.process.pid}.0.`))
  if (mainThread === undefined) throw new Error(`no main-thread profile of process ${server.process.pid} in ${rawDir}`)
  await rename(join(rawDir, mainThread), profilePath)
  await rm(rawDir, { recursive: true, force: true })
  const profile = JSON.parse(await readFile(profilePath, 'utf8')) as CpuProfile
  if (before.monotonicMicros < profile.startTime || after.monotonicMicros > profile.endTime) {
    throw new Error('the load window is outside the profile: the clocks differ')
  }
  const requests = result['2xx']
  console.log(`${variant}: ${Math.round(result.requests.average)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms under --cpu-prof`)
  return {
    variant,
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests,
    cpuPerRequest: (after.cpuMicros - before.cpuMicros) / requests,
    ...analyse(profile, before.monotonicMicros, after.monotonicMicros)
  }
}

function selfTable (p: Profiled, rows: Row[], limit: number): string[] {
  return [
    '| self (% of busy) | µs/req | function | origin | file |',
    '| ---: | ---: | --- | --- | --- |',
    ...rows.slice(0, limit).map((row) =>
      `| ${percent(row.micros, p.busy)} | ${perRequest(p, row.micros).toFixed(1)} | \`${row.name}\` | ${row.category} | ${row.location} |`)
  ]
}

function summary (p: Profiled, limit: number): string[] {
  const categories = [...byCategory(p.self)].sort((a, b) => b[1] - a[1])
  return [
    `## ${VARIANT_LABELS[p.variant]}`,
    '',
    `${Math.round(p.reqPerSec)} req/s (p50 ${p.p50} ms, p99 ${p.p99} ms) under the profiler; ${p.samples} samples in the ${(p.window / 1e6).toFixed(1)} s window, ` +
    `${percent(p.busy, p.window)} busy; ${p.requests} requests; server CPU ${Math.round(p.cpuPerRequest)} µs per request (all threads), ` +
    `${Math.round(p.busy / p.requests)} µs of busy main-thread samples per request. µs/req columns scale each share of busy samples to the CPU per request.`,
    '',
    '### Self time by origin',
    '',
    '| origin | self (% of busy) | µs/req |',
    '| --- | ---: | ---: |',
    ...categories.map(([category, micros]) => `| ${category} | ${percent(micros, p.busy)} | ${perRequest(p, micros).toFixed(1)} |`),
    '',
    `### Top ${limit} functions by self time`,
    '',
    ...selfTable(p, p.self, limit),
    ''
  ]
}

function pluginDetail (p: Profiled, limit: number): string[] {
  return [
    `### ${VARIANT_LABELS[p.variant]}: lib/ functions by self time`,
    '',
    ...selfTable(p, p.self.filter((row) => row.category === LIB), limit),
    '',
    `### ${VARIANT_LABELS[p.variant]}: lib/ functions by total time (self + everything they call)`,
    '',
    '| total (% of busy) | µs/req | function | file |',
    '| ---: | ---: | --- | --- |',
    ...p.inclusive.filter((row) => row.category === LIB).slice(0, limit)
      .map((row) => `| ${percent(row.micros, p.busy)} | ${perRequest(p, row.micros).toFixed(1)} | \`${row.name}\` | ${row.location} |`),
    ''
  ]
}

/** Where `a` spends more per request than `b`: by origin, then by function. */
function comparison (a: Profiled, b: Profiled, limit: number): string[] {
  const aCategories = byCategory(a.self)
  const bCategories = byCategory(b.self)
  const names = [...new Set([...aCategories.keys(), ...bCategories.keys()])]
  const categoryRows = names.map((name) => ({
    name,
    a: perRequest(a, aCategories.get(name) ?? 0),
    b: perRequest(b, bCategories.get(name) ?? 0)
  })).sort((x, y) => (y.a - y.b) - (x.a - x.b))
  const bSelf = new Map(b.self.map((row) => [row.key, row]))
  const functionRows = a.self.map((row) => ({
    row,
    a: perRequest(a, row.micros),
    b: perRequest(b, bSelf.get(row.key)?.micros ?? 0)
  })).sort((x, y) => (y.a - y.b) - (x.a - x.b))
  const label = (variant: Variant): string => SHORT_LABELS[variant]
  return [
    `## ${label(a.variant)} against ${label(b.variant)}, per request`,
    '',
    `Server CPU per request: ${Math.round(a.cpuPerRequest)} µs against ${Math.round(b.cpuPerRequest)} µs ` +
    `(${label(a.variant)} costs ${Math.round(a.cpuPerRequest - b.cpuPerRequest)} µs more; server-only ratio ${(b.cpuPerRequest / a.cpuPerRequest).toFixed(2)}).`,
    '',
    `| origin | ${label(a.variant)} µs/req | ${label(b.variant)} µs/req | difference |`,
    '| --- | ---: | ---: | ---: |',
    ...categoryRows.map((r) => `| ${r.name} | ${r.a.toFixed(1)} | ${r.b.toFixed(1)} | ${(r.a - r.b) >= 0 ? '+' : ''}${(r.a - r.b).toFixed(1)} |`),
    '',
    `Functions with the largest extra self time in ${label(a.variant)}:`,
    '',
    `| function | origin | file | ${label(a.variant)} µs/req | ${label(b.variant)} µs/req | difference |`,
    '| --- | --- | --- | ---: | ---: | ---: |',
    ...functionRows.slice(0, limit).map((r) =>
      `| \`${r.row.name}\` | ${r.row.category} | ${r.row.location} | ${r.a.toFixed(1)} | ${r.b.toFixed(1)} | +${(r.a - r.b).toFixed(1)} |`),
    ''
  ]
}

async function main (): Promise<void> {
  const variants = (flags.variants as string).split(',') as Variant[]
  for (const variant of variants) if (!VARIANTS.includes(variant)) throw new Error(`unknown variant ${variant}; use ${VARIANTS.join(', ')}`)
  const profileDir = join(OUT_DIR, 'profiles')
  await mkdir(profileDir, { recursive: true })
  const emulator = await startChild('emulator', 'bench/emulator-process.ts', [], { env: { EMULATOR_TRIM_MS: '100' } })
  const profiled: Profiled[] = []
  try {
    for (const variant of variants) profiled.push(await profileOne(variant, emulator, profileDir))
  } finally {
    await emulator.close()
  }
  const limit = Number(flags.top)
  const [first, ...rest] = profiled as [Profiled, ...Profiled[]]
  const lines = [
    `# CPU profiles, logging ${flags.log ? 'at info, to a file' : 'off'}`,
    '',
    `\`node --cpu-prof --cpu-prof-interval=${flags.interval as string}\` on each server process, one at a time against one emulator; ` +
    `${flags.duration as string} s of load (${flags.connections as string} connections) after ${flags.warmup as string} s of warmup, and only the samples ` +
    'of the loaded window count. Samples are wall-clock: on a busy machine a function that was descheduled keeps its sample, so shares ' +
    'carry some noise; the µs/req figures are scaled to the CPU time each server measured itself.',
    '',
    ...summary(first, limit),
    ...(first.variant.startsWith('plugin') ? pluginDetail(first, limit) : []),
    // Each later variant against the first: the dearer one's extra cost, function by function.
    ...rest.flatMap((p) => [...(p.cpuPerRequest > first.cpuPerRequest ? comparison(p, first, limit) : comparison(first, p, limit)), ...summary(p, 12)])
  ]
  const markdown = lines.join('\n')
  await writeFile(join(OUT_DIR, `profile-summary${flags.log ? '-logging' : ''}.md`), markdown)
  console.log(`\n${markdown}`)
  console.log(`wrote bench/.out/profiles/{${variants.join(',')}}.cpuprofile and bench/.out/profile-summary${flags.log ? '-logging' : ''}.md`)
}

await main()
