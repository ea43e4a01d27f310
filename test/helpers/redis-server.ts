import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { accessSync, constants } from 'node:fs'
import { connect, createServer } from 'node:net'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis, type RedisOptions } from 'ioredis'
import type { Test } from 'tap'

export const REDIS_MISSING = 'redis-server not found: Redis store tests did not run (apt-get install redis-server, or set REDIS_URL)'

const STARTUP_TIMEOUT_MS = 5000

export interface RedisServer {
  readonly url: string
  readonly port: number
  /** True for the server named by REDIS_URL: it can be neither stopped nor restarted. */
  readonly external: boolean
  /** Kills the server process and waits until it is gone. */
  stop (): Promise<void>
  /** Starts the server again on the same port and waits until it answers PING. */
  restart (): Promise<void>
}

/**
 * The Redis server of REDIS_URL, or a fresh `redis-server` on a free loopback port (no
 * persistence). Undefined when neither exists: tests then skip with REDIS_MISSING.
 */
export async function startRedisServer (): Promise<RedisServer | undefined> {
  const url = process.env.REDIS_URL
  if (url !== undefined && url !== '') return externalServer(url)
  const binary = findOnPath('redis-server')
  return binary === undefined ? undefined : await LocalRedisServer.start(binary)
}

/**
 * The Redis server for the tests of `t` (see `startRedisServer`), stopped when `t` ends unless it is
 * the server of REDIS_URL. Without one, `t` skips with REDIS_MISSING and this resolves to undefined.
 */
export async function redisServerFor (t: Test): Promise<RedisServer | undefined> {
  const server = await startRedisServer()
  if (server === undefined) {
    t.comment(REDIS_MISSING)
    t.skip(REDIS_MISSING, () => {})
    return undefined
  }
  t.teardown(() => server.external ? undefined : server.stop())
  return server
}

/** A client of `server` that has answered PING, closed when `t` ends; like an app instance's own. */
export async function redisClient (t: Test, server: RedisServer, options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis(server.url, { maxRetriesPerRequest: 1, ...options })
  // Outages are the subject of some tests: connection errors are expected, not unhandled.
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await client.ping()
  return client
}

/** The names `defineCommand` is called with on `client` from now on; the commands are still defined. */
export function definedCommands (client: Redis): string[] {
  const defined: string[] = []
  const defineCommand = client.defineCommand.bind(client)
  client.defineCommand = (name, definition) => {
    defined.push(name)
    defineCommand(name, definition)
  }
  return defined
}

/**
 * Makes key prefixes of their own for the tests of `t` on `server`. The server of REDIS_URL may be
 * shared: the keys under them are deleted from it when `t` ends.
 */
export function testPrefixes (t: Test, server: RedisServer): () => string {
  const used: string[] = []
  if (server.external) t.teardown(() => deleteKeysUnder(server, used))
  return () => {
    const prefix = `test-${randomUUID()}:`
    used.push(prefix)
    return prefix
  }
}

async function deleteKeysUnder (server: RedisServer, prefixes: readonly string[]): Promise<void> {
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  for (const prefix of prefixes) {
    const keys = await redis.keys(`*{${prefix}}*`)
    if (keys.length > 0) await redis.del(...keys)
  }
  redis.disconnect()
}

function externalServer (url: string): RedisServer {
  const refuse = async (): Promise<never> => {
    throw new Error('The Redis server of REDIS_URL cannot be stopped or restarted by tests')
  }
  return { url, port: Number(new URL(url).port || 6379), external: true, stop: refuse, restart: refuse }
}

export function findOnPath (command: string): string | undefined {
  for (const directory of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(directory, command)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

class LocalRedisServer implements RedisServer {
  readonly external = false
  readonly #binary: string
  readonly port: number
  #child: ChildProcess | undefined
  #output = ''
  readonly #killOnExit = (): void => { this.#child?.kill('SIGKILL') }

  static async start (binary: string): Promise<LocalRedisServer> {
    // Another process may take the free port before redis-server binds it: try a few.
    for (let attempt = 1; ; attempt++) {
      const server = new LocalRedisServer(binary, await freePort())
      try {
        await server.restart()
        return server
      } catch (error) {
        await server.stop()
        if (attempt === 3) throw error
      }
    }
  }

  constructor (binary: string, port: number) {
    this.#binary = binary
    this.port = port
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async restart (): Promise<void> {
    if (this.#child !== undefined) throw new Error('redis-server is already running')
    this.#output = ''
    const child = spawn(this.#binary, [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child = child
    process.once('exit', this.#killOnExit)
    const keepTail = (chunk: Buffer): void => { this.#output = (this.#output + chunk.toString()).slice(-2000) }
    child.stdout?.on('data', keepTail)
    child.stderr?.on('data', keepTail)
    await this.#waitUntilReady(child)
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

  async #waitUntilReady (child: ChildProcess): Promise<void> {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS
    while (!(await answersPing(this.port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`redis-server did not start on port ${this.port}: ${this.#output.trim()}`)
      }
      await sleep(20)
    }
  }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function answersPing (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const done = (answer: boolean): void => {
      socket.destroy()
      resolve(answer)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')))
  })
}
