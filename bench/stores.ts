// Micro-benchmark of the session stores. Run:
//   node --expose-gc --import tsx bench/stores.ts
// Measures acquire + bind + releaseSession cycles per second (one cycle in flight, then 64), and
// the memory one bound slot takes, with 100k live slots each on its own key and session id
// (the key and session id strings included). Memory: heapUsed delta after global.gc(); Redis:
// INFO memory used_memory delta. Redis runs when REDIS_URL is set or redis-server is on PATH.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import { MemorySessionStore } from '../lib/limits/memory-store.js'
import { RedisSessionStore } from '../lib/limits/redis-store.js'
import type { SessionStore } from '../lib/limits/store.js'
import { startRedisServer } from '../test/helpers/redis-server.js'

const LONG_MS = 3_600_000
const LIVE_SLOTS = 100_000
const PARALLEL = 64

interface Row {
  store: string
  serial: number
  parallel: number
  bytesPerSlot: number | undefined
}

async function cycle (store: SessionStore, n: number): Promise<void> {
  const key = `ip-${n % 1000}`
  const result = await store.acquire({ key, concurrency: PARALLEL, pendingMs: LONG_MS })
  if (!result.ok) throw new Error(`bench: no slot (${result.scope})`)
  await store.bind(result.slotId, `sess-${n}`, LONG_MS)
  await store.releaseSession(`sess-${n}`, key)
}

/** Cycles per second with `inFlight` cycles running at once, over about `durationMs`. */
async function cyclesPerSecond (store: SessionStore, inFlight: number, durationMs: number): Promise<number> {
  let done = 0
  const started = performance.now()
  const worker = async (id: number): Promise<void> => {
    for (let n = id; performance.now() - started < durationMs; n += inFlight) {
      await cycle(store, n)
      done++
    }
  }
  await Promise.all(Array.from({ length: inFlight }, (_, id) => worker(id)))
  return done / ((performance.now() - started) / 1000)
}

/** Takes LIVE_SLOTS bound slots, `batch` at a time. */
async function fill (store: SessionStore, batch: number): Promise<void> {
  for (let start = 0; start < LIVE_SLOTS; start += batch) {
    await Promise.all(Array.from({ length: batch }, async (_, i) => {
      const n = start + i
      const result = await store.acquire({ key: `client-${n}`, concurrency: 1, pendingMs: LONG_MS })
      if (result.ok) await store.bind(result.slotId, `sess_${n.toString(16).padStart(24, '0')}`, LONG_MS)
    }))
  }
}

function collectGarbage (): void {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with node --expose-gc --import tsx bench/stores.ts')
  gc()
  gc()
}

async function benchMemory (): Promise<Row> {
  await cyclesPerSecond(new MemorySessionStore(), 1, 300) // warm up
  const serial = await cyclesPerSecond(new MemorySessionStore(), 1, 2000)
  const parallel = await cyclesPerSecond(new MemorySessionStore(), PARALLEL, 2000)

  collectGarbage()
  const before = process.memoryUsage().heapUsed
  const store = new MemorySessionStore()
  await fill(store, 1000)
  collectGarbage()
  const bytesPerSlot = (process.memoryUsage().heapUsed - before) / store.size
  return { store: 'MemorySessionStore', serial, parallel, bytesPerSlot }
}

async function usedMemory (redis: Redis): Promise<number> {
  const info = await redis.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)?.[1])
}

async function benchRedis (): Promise<Row | undefined> {
  const server = await startRedisServer()
  if (server === undefined) return undefined
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  try {
    const store = (): RedisSessionStore => new RedisSessionStore({ client: redis, prefix: shortPrefix() })
    await cyclesPerSecond(store(), 1, 300)
    const serial = await cyclesPerSecond(store(), 1, 2000)
    const parallel = await cyclesPerSecond(store(), PARALLEL, 2000)

    const before = await usedMemory(redis)
    const prefix = shortPrefix()
    await fill(new RedisSessionStore({ client: redis, prefix }), 1000)
    const bytesPerSlot = (await usedMemory(redis) - before) / LIVE_SLOTS
    await deleteKeys(redis, `{${prefix}}*`)
    return { store: `RedisSessionStore (redis ${await redisVersion(redis)}, loopback)`, serial, parallel, bytesPerSlot }
  } finally {
    redis.disconnect()
    if (!server.external) await server.stop()
  }
}

/** As long as the default `oshara:`, so that key names weigh what they will in production. */
function shortPrefix (): string {
  return `b${randomBytes(3).toString('hex')}:`
}

async function deleteKeys (redis: Redis, pattern: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    if (keys.length > 0) await redis.unlink(...keys)
    cursor = next
  } while (cursor !== '0')
}

async function redisVersion (redis: Redis): Promise<string> {
  return /redis_version:([\d.]+)/.exec(await redis.info('server'))?.[1] ?? '?'
}

function format (row: Row): string {
  const perSecond = (value: number): string => Math.round(value).toLocaleString('en-US')
  const bytes = row.bytesPerSlot === undefined ? 'n/a' : `${Math.round(row.bytesPerSlot)} B`
  return `| ${row.store} | ${perSecond(row.serial)} | ${perSecond(row.parallel)} | ${bytes} |`
}

const rows = [await benchMemory()]
const redisRow = await benchRedis()
if (redisRow !== undefined) rows.push(redisRow)

console.log(`Node ${process.version}; one cycle = acquire + bind + releaseSession; memory with ${LIVE_SLOTS.toLocaleString('en-US')} live bound slots\n`)
console.log('| store | cycles/s, 1 in flight | cycles/s, 64 in flight | memory per active slot |')
console.log('| --- | ---: | ---: | ---: |')
for (const row of rows) console.log(format(row))
if (redisRow === undefined) console.log('\nRedis not measured: set REDIS_URL or install redis-server.')
