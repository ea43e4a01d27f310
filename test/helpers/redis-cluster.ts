import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Cluster, type ClusterOptions } from 'ioredis'
import type { Test } from 'tap'
import { findOnPath } from './redis-server.js'
import { waitUntil } from './wait.js'

const run = promisify(execFile)

export const CLUSTER_MISSING = 'redis-server or redis-cli not found: Redis Cluster tests did not run (apt-get install redis-server, which brings redis-cli)'

const MASTERS = 3
const STARTUP_TIMEOUT_MS = 15_000

/** One master of the cluster, which a test can stop and start again (it keeps its slots: its nodes file stays). */
export interface ClusterNode {
  readonly port: number
  stop (): Promise<void>
  start (): Promise<void>
}

export interface RedisCluster {
  readonly nodes: readonly ClusterNode[]
  /** Every master, as ioredis' `Cluster` takes them. */
  readonly startupNodes: ReadonlyArray<{ host: string, port: number }>
  /** Waits until every master answers and reports `cluster_state:ok`. */
  waitUntilOk (timeoutMs?: number): Promise<void>
  /** The master that serves `key`'s hash slot. */
  nodeOf (key: string): Promise<ClusterNode>
}

/**
 * A real Redis Cluster: three masters on free loopback ports (`cluster-enabled yes`, no persistence,
 * their nodes files in a temporary directory), `cluster-require-full-coverage no`, joined by `redis-cli --cluster create`, ready once every
 * master reports `cluster_state:ok`; stopped and the directory removed when `t` ends. Without
 * `redis-server` or `redis-cli`, `t` skips with CLUSTER_MISSING and this resolves to undefined.
 */
export async function redisClusterFor (t: Test): Promise<RedisCluster | undefined> {
  const server = findOnPath('redis-server')
  const cli = findOnPath('redis-cli')
  if (server === undefined || cli === undefined) {
    t.comment(CLUSTER_MISSING)
    t.skip(CLUSTER_MISSING, () => {})
    return undefined
  }
  const directory = mkdtempSync(join(tmpdir(), 'oshara-cluster-'))
  const nodes: LocalNode[] = []
  t.teardown(async () => {
    await Promise.all(nodes.map((node) => node.stop()))
    rmSync(directory, { recursive: true, force: true })
  })
  // The cluster bus of each master gets a free port of its own (by default it is port + 10000).
  const ports = await freePorts(MASTERS * 2)
  for (let i = 0; i < MASTERS; i++) {
    const node = new LocalNode(server, cli, ports[i] as number, ports[MASTERS + i] as number, directory)
    nodes.push(node)
    await node.start()
  }
  const addresses = nodes.map((node) => `127.0.0.1:${node.port}`)
  await run(cli, ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: STARTUP_TIMEOUT_MS })
  const cluster: RedisCluster = {
    nodes,
    startupNodes: nodes.map(({ port }) => ({ host: '127.0.0.1', port })),
    waitUntilOk: async (timeoutMs = STARTUP_TIMEOUT_MS) => {
      await waitUntil(async () => (await Promise.all(nodes.map((node) => node.clusterOk()))).every(Boolean),
        'every master reports cluster_state:ok', timeoutMs)
    },
    nodeOf: async (key) => {
      const running = nodes.find((node) => node.running) as LocalNode
      const slot = Number(await running.cli('CLUSTER', 'KEYSLOT', key))
      // CLUSTER NODES: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot or range>...`
      for (const line of (await running.cli('CLUSTER', 'NODES')).split('\n')) {
        const fields = line.split(' ')
        const serves = fields.slice(8).some((range) => {
          const [from, to = from] = range.split('-').map(Number)
          return slot >= (from as number) && slot <= (to as number)
        })
        const port = Number(/:(\d+)@/.exec(fields[1] ?? '')?.[1])
        const node = nodes.find((candidate) => candidate.port === port)
        if (serves && node !== undefined) return node
      }
      throw new Error(`no master serves slot ${slot}`)
    }
  }
  await cluster.waitUntilOk()
  return cluster
}

/** An ioredis `Cluster` client of `cluster` that has answered PING, closed when `t` ends; like an app instance's own. */
export async function clusterClient (t: Test, cluster: RedisCluster, options: ClusterOptions = {}): Promise<Cluster> {
  const client = new Cluster([...cluster.startupNodes], { redisOptions: { maxRetriesPerRequest: 1 }, ...options })
  // Outages are the subject of some tests: connection errors are expected, not unhandled.
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await client.ping()
  return client
}

class LocalNode implements ClusterNode {
  readonly port: number
  readonly #busPort: number
  readonly #server: string
  readonly #cli: string
  readonly #directory: string
  #child: ChildProcess | undefined
  #output = ''
  readonly #killOnExit = (): void => { this.#child?.kill('SIGKILL') }

  constructor (server: string, cli: string, port: number, busPort: number, directory: string) {
    this.#server = server
    this.#cli = cli
    this.port = port
    this.#busPort = busPort
    this.#directory = directory
  }

  get running (): boolean {
    return this.#child !== undefined
  }

  async start (): Promise<void> {
    if (this.#child !== undefined) throw new Error(`the master on port ${this.port} is already running`)
    this.#output = ''
    const child = spawn(this.#server, [
      '--port', String(this.port), '--cluster-port', String(this.#busPort), '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${this.port}.conf`, '--cluster-node-timeout', '1000',
      // A stopped master takes down only its own slots, as it would once its replica took over (tests have none).
      '--cluster-require-full-coverage', 'no',
      '--save', '', '--appendonly', 'no', '--loglevel', 'warning'
    ], { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.#directory })
    this.#child = child
    process.once('exit', this.#killOnExit)
    const keepTail = (chunk: Buffer): void => { this.#output = (this.#output + chunk.toString()).slice(-2000) }
    child.stdout?.on('data', keepTail)
    child.stderr?.on('data', keepTail)
    const deadline = Date.now() + STARTUP_TIMEOUT_MS
    while (!(await this.#answersPing())) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`redis-server (cluster mode) did not start on port ${this.port}: ${this.#output.trim()}`)
      }
      await sleep(20)
    }
  }

  async stop (): Promise<void> {
    const child = this.#child
    if (child === undefined) return
    this.#child = undefined
    process.removeListener('exit', this.#killOnExit)
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
  }

  async cli (...args: string[]): Promise<string> {
    const { stdout } = await run(this.#cli, ['-h', '127.0.0.1', '-p', String(this.port), ...args], { timeout: 5000 })
    return stdout.trim()
  }

  async clusterOk (): Promise<boolean> {
    try {
      return (await this.cli('CLUSTER', 'INFO')).includes('cluster_state:ok')
    } catch {
      return false
    }
  }

  async #answersPing (): Promise<boolean> {
    try {
      return await this.cli('PING') === 'PONG'
    } catch {
      return false
    }
  }
}

async function freePorts (count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return server
  }))
  const ports = servers.map((server) => (server.address() as { port: number }).port)
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}
