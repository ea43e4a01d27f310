// Profiles one server under load: `node --import tsx bench/profile.ts [--variant plugin]`.
// Runs the server with `node --cpu-prof`, loads it (warmup, then --duration s measured), and
// summarises the samples of the measured window by self time: the plugin (lib/), Fastify,
// undici, Node and V8. Writes bench/.out/profiles/<variant>.cpuprofile (open it in Chrome
// DevTools) and bench/.out/profile-summary.md.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { load, OUT_DIR, ROOT, startChild, VARIANTS, type Variant } from './harness.js'

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
  name: string
  category: string
  location: string
  micros: number
}

const { values: flags } = parseArgs({
  options: {
    variant: { type: 'string', default: 'plugin' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    interval: { type: 'string', default: '250' },
    top: { type: 'string', default: '25' }
  }
})

const CATEGORIES: Array<[RegExp, string]> = [
  [/\/work\/main\/lib\/|\/lib\/(client|limits|route|emulator)\/|\/lib\/(mint|plugin|options|errors|validate)\.ts/, 'plugin (lib/)'],
  [/node_modules\/undici\//, 'undici'],
  [/node_modules\/(pino|sonic-boom|pino-std-serializers|thread-stream|fast-redact|quick-format-unescaped|on-exit-leak-free)\//, 'pino'],
  [/node_modules\/@sinclair\/typebox\//, 'typebox'],
  [/node_modules\/(ioredis|@ioredis|redis-parser|denque|cluster-key-slot|standard-as-callback)\//, 'ioredis'],
  [/node_modules\/(fastify|@fastify|find-my-way|avvio|fast-json-stringify|ajv|fast-uri|fast-querystring|light-my-request|process-warning|abstract-logging|rfdc|toad-cache|secure-json-parse|fast-decode-uri-component|safe-regex2|ret|json-schema-ref-resolver|fastify-plugin)\//, 'fastify'],
  [/node_modules\/(tsx|esbuild|get-tsconfig)\//, 'tsx loader'],
  [/\/bench\//, 'bench harness']
]

function categorize (frame: CallFrame): string {
  const { url, functionName } = frame
  if (functionName === '(idle)') return 'idle'
  if (functionName === '(garbage collector)') return 'V8: garbage collector'
  if (functionName === '(program)') return 'V8: (program) native / unattributed'
  if (functionName === '(root)') return 'V8: (root)'
  for (const [pattern, category] of CATEGORIES) if (pattern.test(url)) return category
  if (url.startsWith('node:')) return `node core (${url.slice(5).split('/')[0] as string})`
  if (url === '') return 'V8 builtins / generated code (JSON, RegExp, compiled schemas)'
  return 'other'
}

function locate (frame: CallFrame): string {
  if (frame.url === '') return ''
  const path = frame.url.replace(/^file:\/\//, '').replace(ROOT, '')
  return `${path}:${frame.lineNumber + 1}`
}

function percent (micros: number, total: number): string {
  return `${(micros / total * 100).toFixed(1)}%`
}

/** Self and inclusive time per function over the samples between `from` and `to` (monotonic µs). */
function analyse (profile: CpuProfile, from: number, to: number): { self: Row[], inclusive: Row[], window: number, idle: number, samples: number } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const keyOf = (frame: CallFrame): string => `${frame.functionName || '(anonymous)'}\u0000${frame.url}\u0000${frame.lineNumber}`
  const self = new Map<string, Row>()
  const inclusive = new Map<string, Row>()
  const add = (table: Map<string, Row>, frame: CallFrame, micros: number): void => {
    const key = keyOf(frame)
    const row = table.get(key)
    if (row !== undefined) row.micros += micros
    else table.set(key, { name: frame.functionName || '(anonymous)', category: categorize(frame), location: locate(frame), micros })
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
    if (node.callFrame.functionName === '(idle)') idle += duration
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
  return { self: sort(self), inclusive: sort(inclusive), window, idle, samples }
}

function table (rows: Row[], busy: number, limit: number): string[] {
  return [
    '| self (% of busy) | function | category | location |',
    '| ---: | --- | --- | --- |',
    ...rows.slice(0, limit).map((row) => `| ${percent(row.micros, busy)} | \`${row.name}\` | ${row.category} | ${row.location} |`)
  ]
}

async function main (): Promise<void> {
  const variant = flags.variant as Variant
  if (!VARIANTS.includes(variant)) throw new Error(`unknown variant ${variant}; use ${VARIANTS.join(', ')}`)
  const profileDir = join(OUT_DIR, 'profiles')
  const profilePath = join(profileDir, `${variant}.cpuprofile`)
  // tsx's loader runs on a worker thread, which --cpu-prof profiles too: each thread gets its own
  // file in a fresh directory, and the main thread's (thread id 0) is the one kept.
  const rawDir = join(profileDir, `raw-${variant}`)
  await rm(rawDir, { recursive: true, force: true })
  await mkdir(rawDir, { recursive: true })
  const connections = Number(flags.connections)
  const emulator = await startChild('emulator', 'bench/emulator-process.ts', [])
  let from: number
  let to: number
  let requests: number
  let pid: number | undefined
  try {
    const server = await startChild(variant, 'bench/servers.ts', [variant], {
      env: { OSHARA_URL: emulator.url },
      nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${rawDir}`, `--cpu-prof-interval=${flags.interval as string}`]
    })
    pid = server.process.pid
    await load(server.url, { connections, duration: Number(flags.warmup) })
    await emulator.reset()
    from = (await server.stats()).monotonicMicros
    const result = await load(server.url, { connections, duration: Number(flags.duration) })
    to = (await server.stats()).monotonicMicros
    requests = result['2xx']
    console.log(`${variant}: ${Math.round(result.requests.average)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms under --cpu-prof`)
    await server.close()
  } finally {
    await emulator.close()
  }

  const mainThread = (await readdir(rawDir)).find((name) => name.includes(`.${pid}.0.`))
  if (mainThread === undefined) throw new Error(`no main-thread profile of process ${pid} in ${rawDir}`)
  await rename(join(rawDir, mainThread), profilePath)
  await rm(rawDir, { recursive: true, force: true })
  const profile = JSON.parse(await readFile(profilePath, 'utf8')) as CpuProfile
  if (from < profile.startTime || to > profile.endTime) throw new Error('the load window is outside the profile: clocks differ')
  const { self, inclusive, window, idle, samples } = analyse(profile, from, to)
  const busy = window - idle
  const categories = new Map<string, number>()
  for (const row of self) categories.set(row.category, (categories.get(row.category) ?? 0) + row.micros)
  const limit = Number(flags.top)
  const lines = [
    `# CPU profile: ${variant}, logging off`,
    '',
    `\`node --cpu-prof --cpu-prof-interval=${flags.interval as string}\` on the server process; ${flags.duration as string} s of load (${connections} connections) after ${flags.warmup as string} s of warmup. ` +
    `Only the ${samples} samples of the measured window count: ${(window / 1e6).toFixed(1)} s, ${percent(idle, window)} idle, ${requests} requests answered, ` +
    `${Math.round(busy / requests)} µs of busy main-thread time per request. Percentages are of busy (non-idle) time.`,
    '',
    '## Self time by origin',
    '',
    '| origin | self (% of busy) |',
    '| --- | ---: |',
    ...[...categories].filter(([category]) => category !== 'idle').sort((a, b) => b[1] - a[1]).map(([category, micros]) => `| ${category} | ${percent(micros, busy)} |`),
    '',
    `## Top ${limit} functions by self time`,
    '',
    ...table(self.filter((row) => row.category !== 'idle'), busy, limit),
    '',
    '## The plugin (lib/): functions by self time',
    '',
    ...table(self.filter((row) => row.category === 'plugin (lib/)'), busy, limit),
    '',
    '## The plugin (lib/): functions by total time (self + callees)',
    '',
    '| total (% of busy) | function | location |',
    '| ---: | --- | --- |',
    ...inclusive.filter((row) => row.category === 'plugin (lib/)').slice(0, limit)
      .map((row) => `| ${percent(row.micros, busy)} | \`${row.name}\` | ${row.location} |`),
    ''
  ]
  const markdown = lines.join('\n')
  await writeFile(join(OUT_DIR, `profile-summary-${variant}.md`), markdown)
  console.log(`\n${markdown}`)
  console.log(`wrote ${profilePath} and bench/.out/profile-summary-${variant}.md`)
}

await main()
