import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, release, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import autocannon, { type Result } from 'autocannon'

/** The repository root (children run from it, so `--import tsx` resolves). */
export const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** Logs, profiles and raw results: git-ignored. */
export const OUT_DIR = fileURLToPath(new URL('.out/', import.meta.url))
export const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url))

/** What every variant sends upstream and where. */
export const ORIGIN = 'https://app.example.com'
export const AGENT = 'support-bot'
export const ROUTE = '/voice-token'
/** The servers under test (bench/servers.ts): A with its three limiter settings, B, C. */
export const VARIANTS = ['plugin', 'plugin-memory', 'plugin-redis', 'undici', 'fetch'] as const
export type Variant = typeof VARIANTS[number]

export const VARIANT_LABELS: Record<Variant, string> = {
  plugin: 'A plugin (default options)',
  'plugin-memory': 'A plugin + limits (memory store)',
  'plugin-redis': 'A plugin + limits (Redis store)',
  undici: 'B hand-written undici Pool.request',
  fetch: 'C seed-style fetch + r.json()'
}

export const SHORT_LABELS: Record<Variant, string> = {
  plugin: 'A',
  'plugin-memory': 'A+memory',
  'plugin-redis': 'A+Redis',
  undici: 'B',
  fetch: 'C'
}

/** What the load generator posts: what a browser page sends. */
export const REQUEST_BODY = '{"language":"en"}'

/** A process's resource figures, as it reports them over IPC. */
export interface ProcessStats {
  /** Current resident set size, bytes. */
  rss: number
  /** Peak resident set size so far, bytes (`process.resourceUsage().maxRSS`). */
  maxRss: number
  heapUsed: number
  /** CPU time used so far (user + system), microseconds. */
  cpuMicros: number
  /** The monotonic clock, microseconds (the clock `--cpu-prof` timestamps use). */
  monotonicMicros: number
  /** Process-specific figures (the emulator's stored sessions and recorded requests). */
  extra: Record<string, number>
}

type Message = { type: 'stats' | 'reset' | 'close', id: number }
type Answer = { type: 'answer', id: number, stats: ProcessStats }

export function ownStats (extra: Record<string, number> = {}): ProcessStats {
  const usage = process.cpuUsage()
  const memory = process.memoryUsage()
  return {
    rss: memory.rss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    heapUsed: memory.heapUsed,
    cpuMicros: usage.user + usage.system,
    monotonicMicros: Number(process.hrtime.bigint() / 1000n),
    extra
  }
}

export interface ChildHandlers {
  /** Figures added to every stats answer. */
  extra?: () => Record<string, number>
  /** Called for a `reset` request (the emulator drops what it stored). */
  reset?: () => void
  /** Ends the process's servers; the process then exits, writing a `--cpu-prof` profile if asked. */
  close: () => Promise<void>
}

/**
 * The child side of the IPC protocol: answers `stats`, `reset` and `close` from the parent.
 * Prints `url` on stdout (one line) once the caller is listening.
 */
export function serveParent (url: string, handlers: ChildHandlers): void {
  const answer = (id: number, then?: () => void): void => {
    const reply: Answer = { type: 'answer', id, stats: ownStats(handlers.extra?.()) }
    process.send?.(reply, undefined, {}, () => then?.())
  }
  process.on('message', (message: Message) => {
    if (message.type === 'stats') answer(message.id)
    else if (message.type === 'reset') {
      handlers.reset?.()
      answer(message.id)
    } else if (message.type === 'close') {
      handlers.close().then(
        // Exit once the answer is out: a --cpu-prof profile is written on the way.
        () => answer(message.id, () => process.exit(0)),
        (error: unknown) => {
          console.error(error)
          process.exit(1)
        })
    }
  })
  // The parent going away ends us too.
  process.on('disconnect', () => process.exit(0))
  process.stdout.write(`${url}\n`)
}

export interface Child {
  readonly name: string
  readonly url: string
  readonly process: ChildProcess
  stats (): Promise<ProcessStats>
  reset (): Promise<ProcessStats>
  /** Asks the child to close and waits for it to exit; resolves to its last stats. */
  close (): Promise<ProcessStats>
}

export interface StartOptions {
  env?: Record<string, string>
  /** Extra node flags, e.g. `--cpu-prof`. */
  nodeFlags?: string[]
  timeoutMs?: number
}

/** Runs `node --import tsx <script> <args>` from the root and waits for the URL it prints. */
export function startChild (name: string, script: string, args: string[], options: StartOptions = {}): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...(options.nodeFlags ?? []), script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc']
  })
  const pending = new Map<number, (stats: ProcessStats) => void>()
  let nextId = 0
  child.on('message', (message: Answer) => {
    pending.get(message.id)?.(message.stats)
    pending.delete(message.id)
  })
  const ask = (type: Message['type']): Promise<ProcessStats> => new Promise((resolve, reject) => {
    if (!child.connected) {
      reject(new Error(`${name}: the process is gone`))
      return
    }
    const id = ++nextId
    pending.set(id, resolve)
    child.send({ type, id } satisfies Message)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))

  return new Promise((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => {
      child.kill()
      reject(new Error(`${name}: no URL within ${options.timeoutMs ?? 20000} ms`))
    }, options.timeoutMs ?? 20000)
    const onExit = (code: number | null): void => {
      clearTimeout(timer)
      reject(new Error(`${name}: exited with ${code} before printing its URL`))
    }
    child.once('exit', onExit)
    child.stdout?.setEncoding('utf8')
    child.stdout?.on('data', function onData (chunk: string) {
      output += chunk
      const newline = output.indexOf('\n')
      if (newline === -1) return
      clearTimeout(timer)
      child.off('exit', onExit)
      child.stdout?.off('data', onData)
      child.stdout?.resume()
      resolve({
        name,
        url: output.slice(0, newline).trim(),
        process: child,
        stats: () => ask('stats'),
        reset: () => ask('reset'),
        close: async () => {
          const stats = await ask('close')
          await exited
          return stats
        }
      })
    })
  })
}

/** A free loopback port (closed again, so a child can take it). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

export interface LoadOptions {
  connections: number
  /** Seconds. */
  duration: number
}

/** One autocannon run of `POST /voice-token` as a browser page sends it. */
export function load (baseUrl: string, options: LoadOptions): Promise<Result> {
  return autocannon({
    url: baseUrl + ROUTE,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: REQUEST_BODY,
    connections: options.connections,
    duration: options.duration,
    timeout: 10
  })
}

export interface Machine {
  cores: number
  cpu: string
  node: string
  memoryGiB: number
  os: string
}

export function machine (): Machine {
  const list = cpus()
  return {
    cores: list.length,
    cpu: list[0]?.model.trim() ?? 'unknown',
    node: process.version,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()} ${process.arch}`
  }
}

/** Busy CPU time of the whole machine (all processes, ours and anyone else's), microseconds. */
export function machineBusyMicros (): number {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal: all but idle and iowait is busy.
    const busy = fields.slice(0, 8).reduce((sum, value, index) => index === 3 || index === 4 ? sum : sum + value, 0)
    return busy * 10_000 // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN
  }
}

/** CPU time a process (not ours to ask over IPC, e.g. redis-server) has used, microseconds. */
export function processCpuMicros (pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10_000
  } catch {
    return 0
  }
}

export function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  if (sorted.length === 0) return Number.NaN
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

export function mib (bytes: number): number {
  return Math.round(bytes / 2 ** 20)
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
