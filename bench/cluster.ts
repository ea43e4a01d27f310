// A Redis Cluster of the run's own for the Cluster variant: three masters in cluster mode on free
// loopback ports (no persistence, nodes files in a temporary folder), joined by redis-cli.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'

const run = promisify(execFile)
const REDIS_CLI = '/usr/bin/redis-cli'
const DEADLINE_MS = 15_000

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function cli (port: number, ...args: string[]): Promise<string> {
  return (await run(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 })).stdout
}

async function until (condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS
  while (!(await condition().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`Redis Cluster: timed out waiting until ${what}`)
    await sleep(50)
  }
}

/** The cluster's masters as `host:port,...`, and what stops it; undefined without redis-server or redis-cli. */
export async function startCluster (redisServer: string): Promise<{ nodes: string, stop: () => void } | undefined> {
  if (!existsSync(redisServer) || !existsSync(REDIS_CLI)) return undefined
  const directory = mkdtempSync(join(tmpdir(), 'oshara-bench-cluster-'))
  const children: ChildProcess[] = []
  const stop = (): void => {
    for (const child of children) child.kill()
    rmSync(directory, { recursive: true, force: true })
  }
  process.once('exit', stop)
  const ports: number[] = []
  for (let i = 0; i < 3; i++) {
    const [port, bus] = [await freePort(), await freePort()]
    ports.push(port)
    children.push(spawn(redisServer, ['--port', String(port), '--cluster-port', String(bus), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`, '--save', '', '--appendonly', 'no'], { cwd: directory, stdio: 'ignore' }))
    await until(async () => (await cli(port, 'PING')).trim() === 'PONG', `the master on ${port} answers`)
  }
  await run(REDIS_CLI, ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: DEADLINE_MS })
  await until(async () => (await Promise.all(ports.map(async (port) => (await cli(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')))).every(Boolean),
    'every master reports cluster_state:ok')
  return { nodes: ports.map((port) => `127.0.0.1:${port}`).join(','), stop }
}
