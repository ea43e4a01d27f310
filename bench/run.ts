// `npm run bench`: every server of bench/variants.ts in its own process, all calling one Oshara
// emulator in a process of its own; autocannon, here, loads them in turn (A, ..., C, then again),
// and each server reports the CPU time it spent in the measured seconds. Prints one table and
// writes it to bench/RESULTS.md. The Redis variants run on a redis-server started on a free
// loopback port (from /usr/bin/redis-server; skipped with a note when it is missing), the Cluster
// variant on a Redis Cluster of three masters started the same way (bench/cluster.ts, with redis-cli).
//
// Environment:
//   BENCH_ROUNDS       rounds (default 15: many short turns, so the per-round ratios see the same
//                      moments of a noisy machine)
//   BENCH_DURATION     seconds measured per variant and round (default 2)
//   BENCH_WARMUP       seconds of load before each measurement (default 1), and before the first
//                      round, BENCH_DURATION seconds of load on each server, not measured
//   BENCH_RATE         the fixed rate: requests per second offered to each server (default 1500); each
//                      round measures every server saturated (as many requests as it answers), then
//                      at this rate, and the targets are judged at it. 0: saturated only
//   BENCH_SATURATED    0: the fixed rate only (e.g. to profile at it)
//   BENCH_CONNECTIONS  connections (default 50)
//   BENCH_VARIANTS     comma-separated variant names, e.g. A,B (default: every entry of bench/variants.ts)
//   BENCH_PIN          0: servers not pinned to CPU 0 (see PIN below)
//   BENCH_BASELINE     another built checkout of this package: its A and A + memory limiter run too
//   BENCH_CPU_PROF     a directory: each server writes V8 CPU profiles (--cpu-prof) into a folder
//                      of its own there as it closes; `node --import tsx bench/profile.ts <dir>` summarizes them
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import autocannon, { type Result } from 'autocannon'
import { startCluster } from './cluster.js'
import { ROUTE, VARIANTS } from './variants.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15)
const DURATION = Number(process.env.BENCH_DURATION ?? 2)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const RATE = Number(process.env.BENCH_RATE ?? 1500)
interface Mode {
  title: string
  /** Requests per second offered, 0 for as many as the server answers. */
  rate: number
}
/** What each round measures, in this order; the targets are judged in the last. */
const MODES: Mode[] = [
  ...(process.env.BENCH_SATURATED === '0' ? [] : [{ title: 'saturated', rate: 0 }]),
  ...(RATE > 0 ? [{ title: `${RATE} req/s`, rate: RATE }] : [])
]
if (MODES.length === 0) throw new Error('BENCH_RATE=0 and BENCH_SATURATED=0 leave nothing to measure')
const CPU_PROF = process.env.BENCH_CPU_PROF
const REDIS_SERVER = '/usr/bin/redis-server'
const TASKSET = '/usr/bin/taskset'
/**
 * With `taskset` and 2 or more CPUs, each server runs alone on CPU 0 and everything else (this
 * runner and autocannon, the emulator, Redis) on the others: a server's CPU time then depends on
 * its own work, not on whom it shares a core with. `BENCH_PIN=0` turns it off.
 */
const PIN = process.env.BENCH_PIN !== '0' && existsSync(TASKSET) && cpus().length >= 2
  ? { server: '0', rest: `1-${cpus().length - 1}` }
  : undefined
if (PIN !== undefined && process.env.BENCH_PINNED === undefined) {
  const runner = spawn(TASKSET, ['-c', PIN.rest, process.execPath, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, BENCH_PINNED: '1' } })
  const code = await new Promise<number | null>((resolve) => runner.once('exit', resolve))
  process.exit(code ?? 1)
}
const ROOT = new URL('..', import.meta.url)

interface Child {
  url: string
  /** Sends a message; resolves to the child's CPU time so far, µs. */
  ask: (message: 'cpu' | 'reset') => Promise<number>
  close: () => Promise<void>
}

/** `server`: a server under test (pinned to its CPU, profiled with BENCH_CPU_PROF), not the emulator. */
async function startChild (args: string[], server = false): Promise<Child> {
  // One folder per server: tsx's loader thread writes a profile of its own beside the main thread's.
  const flags = server && CPU_PROF !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}/${args[0]}`] : []
  const command = [process.execPath, ...flags, '--import', 'tsx', 'bench/child.ts', ...args]
  const pinned = PIN === undefined ? command : [TASKSET, '-c', server ? PIN.server : PIN.rest, ...command]
  const child = spawn(pinned[0] as string, pinned.slice(1), { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (message: { url: string }) => resolve(message.url))
    child.once('exit', (code) => reject(new Error(`bench/child.ts ${args[0]} exited with ${code} before listening`)))
  })
  return {
    url,
    ask: (message) => new Promise((resolve) => {
      child.once('message', (answer: { cpu: number }) => resolve(answer.cpu))
      child.send(message)
    }),
    close: () => new Promise((resolve) => {
      child.once('exit', () => resolve())
      child.send('close')
    })
  }
}

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A redis-server of the run's own, or undefined when there is none to start. */
async function startRedis (): Promise<{ url: string, process: ChildProcess } | undefined> {
  if (!existsSync(REDIS_SERVER)) return undefined
  const port = await freePort()
  const redis = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  process.once('exit', () => redis.kill())
  let output = ''
  await new Promise<void>((resolve, reject) => {
    redis.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve()
    })
    redis.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${output}`)))
  })
  return { url: `redis://127.0.0.1:${port}`, process: redis }
}

/** Requests each server answered, warmups included: with BENCH_CPU_PROF, what its profile covers. */
const answered = new Map<string, number>()

/** Gives each request an `Idempotency-Key` of its own. */
const withIdempotencyKey = [{ setupRequest: (request: Record<string, unknown>) => ({ ...request, headers: { ...(request.headers as Record<string, string>), 'idempotency-key': randomUUID() } }) }]

/** `rate`: requests per second offered, 0 for as many as the server answers. */
async function load (url: string, seconds: number, rate: number, idempotencyKeys = false): Promise<Result> {
  const result = await autocannon({
    ...(idempotencyKeys ? { requests: withIdempotencyKey } : {}),
    url: url + ROUTE,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"language":"en"}',
    connections: CONNECTIONS,
    ...(rate > 0 ? { overallRate: rate } : {}),
    duration: seconds
  })
  answered.set(url, (answered.get(url) ?? 0) + result['2xx'])
  return result
}

interface Round {
  cpuPerRequest: number
  reqPerSec: number
  p50: number
  p99: number
  failures: number
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

const names = process.env.BENCH_VARIANTS?.split(',') ?? Object.keys(VARIANTS)
const unknown = names.filter((name) => VARIANTS[name] === undefined)
if (unknown.length > 0) throw new Error(`unknown variant(s) ${unknown.join(', ')}; use ${Object.keys(VARIANTS).join(', ')}`)
const notes: string[] = []
const redis = names.some((name) => VARIANTS[name]?.redis === 'server') ? await startRedis() : undefined
const cluster = names.some((name) => VARIANTS[name]?.redis === 'cluster') ? await startCluster(REDIS_SERVER) : undefined
const active = names.filter((name) => VARIANTS[name]?.redis === undefined || (VARIANTS[name]?.redis === 'server' ? redis : cluster) !== undefined)
for (const name of names.filter((name) => !active.includes(name))) notes.push(`${name} skipped: no ${REDIS_SERVER} (and redis-cli for the Cluster).`)

const emulator = await startChild(['emulator'])
const servers = new Map<string, Child>()
/** Per mode, per variant, its rounds. */
const rounds = MODES.map(() => new Map<string, Round[]>(active.map((name) => [name, []])))
try {
  for (const name of active) servers.set(name, await startChild([name, emulator.url, redis?.url ?? '', cluster?.nodes ?? ''], true))
  // A first pass, not measured: the JIT settles, heaps and the memory stores reach their steady size.
  for (const name of active) {
    await emulator.ask('reset')
    await load((servers.get(name) as Child).url, DURATION, (MODES[0] as Mode).rate, VARIANTS[name]?.idempotencyKeys)
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [mode, { title, rate }] of MODES.entries()) {
      for (const name of active) {
        const server = servers.get(name) as Child
        await emulator.ask('reset')
        const idempotencyKeys = VARIANTS[name]?.idempotencyKeys
        if (WARMUP > 0) await load(server.url, WARMUP, rate, idempotencyKeys)
        const before = await server.ask('cpu')
        const result = await load(server.url, DURATION, rate, idempotencyKeys)
        const cpu = await server.ask('cpu') - before
        const measured: Round = {
          cpuPerRequest: cpu / Math.max(1, result['2xx']),
          reqPerSec: result.requests.average,
          p50: result.latency.p50,
          p99: result.latency.p99,
          failures: result.non2xx + result.errors + result.timeouts
        }
        rounds[mode]?.get(name)?.push(measured)
        console.log(`round ${round} ${title.padEnd(12)} ${name.padEnd(9)} ${measured.cpuPerRequest.toFixed(0).padStart(4)} µs/req ${measured.reqPerSec.toFixed(0).padStart(6)} req/s ` +
          `p50 ${measured.p50} ms p99 ${measured.p99} ms${measured.failures > 0 ? ` FAILED ${measured.failures}` : ''}`)
      }
    }
  }
} finally {
  for (const server of servers.values()) await server.close()
  if (CPU_PROF !== undefined) {
    const requests = Object.fromEntries([...servers].map(([name, server]) => [name, answered.get(server.url) ?? 0]))
    await writeFile(join(CPU_PROF, 'requests.json'), JSON.stringify(requests))
  }
  await emulator.close()
  redis?.process.kill()
  cluster?.stop()
}

/** Median over the rounds of `of(round)` in mode `mode`, or undefined when a variant it needs did not run. */
function overRounds (mode: number, names: string[], of: (...costs: number[]) => number): number | undefined {
  const measured = names.map((name) => rounds[mode]?.get(name))
  if (measured.some((m) => m === undefined)) return undefined
  return median((measured[0] as Round[]).map((_, i) => of(...measured.map((m) => (m as Round[])[i]?.cpuPerRequest as number))))
}

// One row per variant, each mode's columns beside the other's.
const lines = [
  `| variant | ${MODES.map(({ title }) => `${title}: × B | µs/req (rounds: min–max) | req/s | p50 ms | p99 ms`).join(' | ')} |`,
  `| --- |${' ---: | ---: | ---: | ---: | ---: |'.repeat(MODES.length)}`
]
for (const name of active) {
  const cells = MODES.map(({ title, rate }, mode) => {
    const measured = rounds[mode]?.get(name) as Round[]
    // Each round's cost over B's in the same round, then the median: drift between rounds cancels out.
    const ratio = overRounds(mode, [name, 'B'], (cost, b) => cost / b)?.toFixed(2) ?? '—'
    const of = (field: keyof Round): number => median(measured.map((m) => m[field]))
    const costs = measured.map((m) => Math.round(m.cpuPerRequest))
    const failures = measured.reduce((sum, m) => sum + m.failures, 0)
    if (failures > 0) notes.push(`${name}, ${title}: ${failures} requests failed (non-2xx, errors or timeouts); its figures are not comparable.`)
    if (rate > 0 && of('reqPerSec') < 0.95 * rate) notes.push(`${name} answered ${of('reqPerSec').toFixed(0)} of the ${rate} req/s offered: at that rate it runs saturated.`)
    return `${ratio} | ${of('cpuPerRequest').toFixed(0)} (${Math.min(...costs)}–${Math.max(...costs)}) | ${of('reqPerSec').toFixed(0)} | ${of('p50')} | ${of('p99')}`
  })
  lines.push(`| ${VARIANTS[name]?.label} | ${cells.join(' | ')} |`)
}

const over = (names: string[]) => (mode: number): number | undefined => overRounds(mode, names, (a, b) => a / b)
const timesB = (v: number): string => `${v.toFixed(2)} × B`
const baseline = (name: string): string => VARIANTS[`${name}@baseline`]?.label ?? ''
// The targets of the hot path, each judged on per-round figures (servers measured moments apart), in the last mode.
const targets: Array<{ target: string, value: (mode: number) => number | undefined, shown: (value: number) => string, met: (value: number) => boolean }> = [
  { target: 'A ≤ 1.10 × B', value: over(['A', 'B']), shown: timesB, met: (v) => v <= 1.10 },
  { target: 'A + limits, memory store ≤ 1.15 × B', value: over(['A+memory', 'B']), shown: timesB, met: (v) => v <= 1.15 },
  { target: 'C ≥ 4 × A', value: over(['C', 'A']), shown: (v) => `${v.toFixed(2)} × A`, met: (v) => v >= 4 },
  { target: `${baseline('A')} ≤ 1.10 × B`, value: over(['A@baseline', 'B']), shown: timesB, met: (v) => v <= 1.10 },
  { target: `${baseline('A+memory')} ≤ 1.15 × B`, value: over(['A+memory@baseline', 'B']), shown: timesB, met: (v) => v <= 1.15 },
  { target: `C ≥ 4 × ${baseline('A')}`, value: over(['C', 'A@baseline']), shown: (v) => `${v.toFixed(2)} × A before`, met: (v) => v >= 4 },
  { target: 'A + limits, Redis store ≤ 1.50 × B', value: over(['A+Redis', 'B']), shown: timesB, met: (v) => v <= 1.50 },
  { target: 'A + limits, Redis Cluster ≤ 1.50 × B', value: over(['A+Cluster', 'B']), shown: timesB, met: (v) => v <= 1.50 },
  {
    // Item by item, the standard primitives stay unless one costs more than 5% of A's CPU per request: half of what B's two signals add to B.
    target: 'one standard AbortSignal ≤ 5% of A\'s CPU per request',
    value: (mode) => overRounds(mode, ['B+signals', 'B', 'A'], (signals, b, a) => (signals - b) / 2 / a * 100),
    shown: (v) => `${v.toFixed(1)}% of A`,
    met: (v) => v <= 5
  },
  {
    // What logging at info adds to A (Fastify's two lines and the plugin's success line) less what it adds to B (the same two and one line of B's own).
    target: 'logging at info costs A no more than B, whose handler logs one line',
    value: (mode) => overRounds(mode, ['A+log', 'A', 'B+log', 'B'], (aLog, a, bLog, b) => (aLog - a) - (bLog - b)),
    shown: (v) => `A's logging ${v <= 0 ? '' : '+'}${v.toFixed(1)} µs/req against B's`,
    met: (v) => v <= 0
  }
]
const judged = MODES.length - 1
const targetLines = targets.filter(({ value }) => value(judged) !== undefined).map(({ target, value, shown, met }) => {
  const others = MODES.slice(0, judged).map((_, mode) => shown(value(mode) as number))
  return `| ${target} | ${shown(value(judged) as number)} | ${met(value(judged) as number) ? 'yes' : 'no'} |${others.map((cell) => ` ${cell} |`).join('')}`
})
const targetHeader = `| target | ${(MODES[judged] as Mode).title}, median over the rounds | met |${MODES.slice(0, judged).map(({ title }) => ` ${title} |`).join('')}\n` +
  `| --- | ---: | --- |${' ---: |'.repeat(judged)}`

const cpuList = cpus()
const BASELINE_ROWS = active.some((name) => name.endsWith('@baseline'))
  ? ' Rows "as built at" are the same variants loaded from another build of the package (`BENCH_BASELINE`): before and after, in one run.'
  : ''
const setup = [
  `${ROUNDS} rounds; in each, every variant ${MODES.map(({ rate }) => rate > 0 ? `at ${rate} requests/s offered` : 'saturated (as many requests as it answers)').join(', then ')}, ` +
    `${DURATION} s measured after ${WARMUP} s of warmup; before the first round, one unmeasured pass of ${DURATION} s`,
  `${CONNECTIONS} connections, all on 127.0.0.1`,
  PIN === undefined ? 'servers not pinned to a CPU' : `each server alone on CPU ${PIN.server}, the emulator, Redis and autocannon on CPUs ${PIN.rest}`
]
const markdown = `# Benchmarks

Written by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: Node ${process.version}, ${cpuList.length} CPUs (${cpuList[0]?.model.trim()}); \
${setup.join('; ')}.

${lines.join('\n')}
${notes.map((note) => `\n- ${note}`).join('')}
${targetLines.length === 0 ? '' : `\n${targetHeader}\n${targetLines.join('\n')}\n`}
**How to read it.** Each server runs in its own process and measures the CPU time (user + system,
its GC threads included) it spends during the measured seconds; divided by the requests it
answered, that is the server's own cost per request, the headline figure. × B is that cost over
the floor B's (a plain Fastify route, one undici \`Pool.request\`, no schemas), taken round by
round (the variants take turns, so each round's ratio compares servers measured moments apart),
median over the rounds; the targets are judged the same way${RATE > 0 ? ', at the fixed rate' : ''}. Saturated, a
server spreads what it spends per moment rather than per request (timers, the event loop's own
turns, collecting long-lived data) over as many requests as it can answer; at a fixed rate, as
apps run, each request carries its share. req/s and the latency percentiles
(autocannon, whole milliseconds) are medians over the rounds too, but the emulator and the load
generator set the pace as much as the server does, so compare servers by CPU per request. Other
work on the machine inflates every figure; a wide min–max range calls for a longer run
(\`BENCH_ROUNDS\`, \`BENCH_DURATION\`) on a quieter machine. A is the plugin as installed
(\`dist/\`), \`{ origin, agent, baseUrl, metadata }\`, logging off; its limits variants give each
request its own key, so nothing is refused and every slot is held 10 s. C calls \`fetch\` per
request, as the seed does. Every variant sends the emulator the same body, with the same
metadata. The logging variants write at \`info\` to /dev/null through pino's own destination:
Fastify's two lines per request in both, the plugin's success line in A, and one line with the
same fields in B's handler.${BASELINE_ROWS} Where each server's CPU goes, by origin (the plugin, Fastify, undici,
Node, GC, pino) and by function: \`bench/PROFILE.md\`, from a run with \`BENCH_CPU_PROF\`.
`
console.log(`\n${markdown}`)
await writeFile(new URL('RESULTS.md', import.meta.url), markdown)
