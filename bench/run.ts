// `npm run bench`: the plugin route (A) against the undici floor (B) and the seed-style fetch
// route (C), every server in its own process, all against one emulator in its own process,
// autocannon in this one. Writes bench/RESULTS.md and bench/.out/results.json.
//
// Flags: --rounds N (3) --duration S (5) --warmup S (1) --connections N (50)
//        --variants plugin,undici,... --logging off,info --no-reset --no-growth-check
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import autocannon, { type Result } from 'autocannon'
import {
  AGENT, BENCH_DIR, type Child, freePort, load, machine, machineBusyMicros, median, processCpuMicros, mib, ORIGIN, OUT_DIR,
  type ProcessStats, REQUEST_BODY, sleep, startChild, VARIANTS, type Variant
} from './harness.js'
import { type GrowthStep, type Logging, type Measurement, type RunReport, type Summary, writeResults } from './report.js'

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    variants: { type: 'string', default: VARIANTS.join(',') },
    logging: { type: 'string', default: 'off,info' },
    'no-reset': { type: 'boolean', default: false },
    'no-growth-check': { type: 'boolean', default: false }
  }
})

const settings = {
  rounds: Number(flags.rounds),
  duration: Number(flags.duration),
  warmup: Number(flags.warmup),
  connections: Number(flags.connections),
  reset: !flags['no-reset']
}
const variants = (flags.variants as string).split(',').filter((name): name is Variant => {
  if ((VARIANTS as readonly string[]).includes(name)) return true
  throw new Error(`unknown variant ${name}; use ${VARIANTS.join(', ')}`)
})
const loggings = (flags.logging as string).split(',') as Logging[]

function cpuPercent (before: ProcessStats, after: ProcessStats, wallMs: number): number {
  return Math.round((after.cpuMicros - before.cpuMicros) / 10 / wallMs)
}

/** A redis-server of our own on a free loopback port, or REDIS_URL, or none. */
interface RedisHandle {
  url: string | undefined
  label: string
  /** Our own redis-server's pid, for its CPU figures. */
  pid?: number | undefined
  stop: () => Promise<void>
}

async function startRedis (notes: string[]): Promise<RedisHandle> {
  const given = process.env.REDIS_URL
  if (given !== undefined) {
    // Someone else's Redis: remove this run's keys (they would otherwise live for an hour).
    const stop = async (): Promise<void> => {
      const client = new Redis(given)
      for await (const keys of client.scanStream({ match: `{oshara-bench-${process.pid}-*`, count: 1000 }) as AsyncIterable<string[]>) {
        if (keys.length > 0) await client.unlink(...keys)
      }
      await client.quit()
    }
    return { url: given, label: 'REDIS_URL', stop }
  }
  const binary = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path))
  if (binary === undefined) {
    notes.push('No redis-server found and no REDIS_URL: the Redis-store variant was skipped.')
    return { url: undefined, label: 'none', stop: async () => {} }
  }
  const port = await freePort()
  const server: ChildProcess = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const url = `redis://127.0.0.1:${port}`
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  for (let tries = 0; ; tries++) {
    try {
      await client.connect()
      await client.ping()
      break
    } catch (error) {
      if (tries > 50) throw error
      await sleep(100)
    }
  }
  const version = (await client.info('server')).match(/redis_version:(\S+)/)?.[1] ?? '?'
  client.disconnect()
  return {
    url,
    pid: server.pid,
    label: `redis-server ${version} on 127.0.0.1:${port} (started by the run)`,
    stop: async () => {
      server.kill()
      await new Promise((resolve) => server.once('exit', resolve))
    }
  }
}

async function measure (server: Child, emulator: Child, redisPid: number | undefined, variant: Variant, logging: Logging, round: number): Promise<Measurement> {
  if (settings.reset) await emulator.reset()
  if (settings.warmup > 0) await load(server.url, { connections: settings.connections, duration: settings.warmup })
  const [serverBefore, emulatorBefore] = await Promise.all([server.stats(), emulator.stats()])
  const loadBefore = process.cpuUsage()
  const machineBefore = machineBusyMicros()
  const redisBefore = processCpuMicros(redisPid)
  const started = performance.now()
  const result = await load(server.url, { connections: settings.connections, duration: settings.duration })
  const wallMs = performance.now() - started
  const loadAfter = process.cpuUsage(loadBefore)
  const machineCpu = Math.round((machineBusyMicros() - machineBefore) / 10 / wallMs)
  const redisCpu = Math.round((processCpuMicros(redisPid) - redisBefore) / 10 / wallMs)
  const [serverAfter, emulatorAfter] = await Promise.all([server.stats(), emulator.stats()])
  const serverCpu = cpuPercent(serverBefore, serverAfter, wallMs)
  const emulatorCpu = cpuPercent(emulatorBefore, emulatorAfter, wallMs)
  const loadCpu = Math.round((loadAfter.user + loadAfter.system) / 10 / wallMs)
  return {
    variant,
    logging,
    round,
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
    serverCpu,
    serverCpuPerRequest: Math.round((serverAfter.cpuMicros - serverBefore.cpuMicros) / Math.max(1, result['2xx'])),
    emulatorCpu,
    loadCpu,
    redisCpu,
    otherCpu: Math.max(0, machineCpu - serverCpu - emulatorCpu - loadCpu - redisCpu),
    emulatorSessions: emulatorAfter.extra.sessions ?? 0
  }
}

/** The emulator alone, loaded directly and never emptied: does what it stores slow it down? */
async function growthCheck (emulator: Child): Promise<GrowthStep[]> {
  await emulator.reset()
  const steps: GrowthStep[] = []
  for (let step = 1; step <= 4; step++) {
    const result: Result = await autocannon({
      url: `${emulator.url}/api/agents/agent-session/`,
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: ORIGIN },
      body: JSON.stringify({ agent: AGENT, ...JSON.parse(REQUEST_BODY) as object }),
      connections: settings.connections,
      duration: 3
    })
    const stats = await emulator.stats()
    steps.push({ step, reqPerSec: result.requests.average, p99: result.latency.p99, sessions: stats.extra.sessions ?? 0, heapUsed: stats.heapUsed })
    console.log(`  growth step ${step}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms, ${stats.extra.sessions} sessions stored, heap ${mib(stats.heapUsed)} MiB`)
  }
  await emulator.reset()
  return steps
}

function summarise (measurements: Measurement[], peakRss: Map<string, number>): Summary[] {
  const summaries: Summary[] = []
  for (const logging of loggings) {
    for (const variant of variants) {
      const mine = measurements.filter((m) => m.variant === variant && m.logging === logging)
      if (mine.length === 0) continue
      summaries.push({
        variant,
        logging,
        reqPerSec: median(mine.map((m) => m.reqPerSec)),
        p50: median(mine.map((m) => m.p50)),
        p99: median(mine.map((m) => m.p99)),
        rounds: mine.map((m) => m.reqPerSec),
        failures: mine.reduce((sum, m) => sum + m.failures, 0),
        serverCpu: median(mine.map((m) => m.serverCpu)),
        serverCpuPerRequest: median(mine.map((m) => m.serverCpuPerRequest)),
        emulatorCpu: median(mine.map((m) => m.emulatorCpu)),
        loadCpu: median(mine.map((m) => m.loadCpu)),
        redisCpu: median(mine.map((m) => m.redisCpu)),
        otherCpu: median(mine.map((m) => m.otherCpu)),
        peakRss: peakRss.get(`${variant}/${logging}`) ?? 0
      })
    }
  }
  return summaries
}

async function main (): Promise<void> {
  const started = Date.now()
  const notes: string[] = []
  const box = machine()
  console.log(`machine: ${box.cores} cores, ${box.cpu}, Node ${box.node}, ${box.memoryGiB} GiB, ${box.os}`)
  console.log(`settings: ${settings.rounds} rounds x ${settings.duration} s (+${settings.warmup} s warmup), ${settings.connections} connections, emulator ${settings.reset ? 'emptied before each measurement' : 'never emptied'}`)
  await mkdir(OUT_DIR, { recursive: true })
  await rm(join(OUT_DIR, 'logs'), { recursive: true, force: true })
  await mkdir(join(OUT_DIR, 'logs'), { recursive: true })

  const emulator = await startChild('emulator', 'bench/emulator-process.ts', [])
  const redis: RedisHandle = variants.includes('plugin-redis') ? await startRedis(notes) : { url: undefined, label: 'not used', stop: async () => {} }
  const active = redis.url === undefined ? variants.filter((v) => v !== 'plugin-redis') : variants
  const measurements: Measurement[] = []
  const peakRss = new Map<string, number>()
  let growth: GrowthStep[] = []
  try {
    for (const logging of loggings) {
      const servers = new Map<Variant, Child>()
      for (const variant of active) {
        const logFile = join(OUT_DIR, 'logs', `${variant}.log`)
        const env: Record<string, string> = { OSHARA_URL: emulator.url, REDIS_PREFIX: `oshara-bench-${process.pid}-${logging}:` }
        if (redis.url !== undefined) env.REDIS_URL = redis.url
        servers.set(variant, await startChild(variant, 'bench/servers.ts', logging === 'off' ? [variant] : [variant, logFile], { env }))
      }
      try {
        for (let round = 1; round <= settings.rounds; round++) {
          for (const variant of active) {
            const m = await measure(servers.get(variant) as Child, emulator, redis.pid, variant, logging, round)
            measurements.push(m)
            console.log(`logging ${logging.padEnd(4)} round ${round} ${variant.padEnd(13)} ${Math.round(m.reqPerSec).toString().padStart(6)} req/s  p50 ${m.p50} ms  p99 ${m.p99} ms  cpu server ${m.serverCpu}% emulator ${m.emulatorCpu}% load ${m.loadCpu}% redis ${m.redisCpu}% others ${m.otherCpu}%${m.failures > 0 ? `  FAILURES ${m.failures}` : ''}`)
          }
        }
      } finally {
        for (const [variant, server] of servers) {
          const last = await server.close()
          peakRss.set(`${variant}/${logging}`, last.maxRss)
        }
      }
    }
    if (!flags['no-growth-check']) {
      console.log('emulator growth check (emulator alone, never emptied):')
      growth = await growthCheck(emulator)
    }
  } finally {
    const last = await emulator.close()
    peakRss.set('emulator', last.maxRss)
    await redis.stop()
  }

  const report: RunReport = {
    machine: box,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    settings: { ...settings, redis: redis.label },
    measurements,
    summaries: summarise(measurements, peakRss),
    emulatorPeakRss: peakRss.get('emulator') ?? 0,
    growth,
    notes
  }
  await writeFile(join(OUT_DIR, 'results.json'), JSON.stringify(report, null, 2))
  const markdown = await writeResults(report, join(BENCH_DIR, 'RESULTS.md'))
  console.log(`\n${markdown}`)
  console.log(`wrote bench/RESULTS.md and bench/.out/results.json in ${report.durationSeconds} s`)
}

await main()
