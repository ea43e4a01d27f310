import t, { type Test } from 'tap'
import { AssertionError } from 'node:assert'
import { performance } from 'node:perf_hooks'
import { setImmediate as yieldOnce, setTimeout as sleep } from 'node:timers/promises'
import { install, type Clock as FakeClock } from '@sinonjs/fake-timers'
import { Redis } from 'ioredis'
import { MemoryQuotaStore } from '../lib/quota/memory-quota-store.js'
import { RedisQuotaStore } from '../lib/quota/redis-quota-store.js'
import { OsharaInvalidOptionsError } from '../lib/errors.js'
import type { ConsumeRequest, ConsumeResult, QuotaBudgets, QuotaStore, QuotaUsage } from '../lib/quota/quota-store.js'
import { quotaStoreContract, type QuotaStoreContractCase, type QuotaStoreContractOptions } from '../lib/testing.js'
import { waitUntil } from './helpers/wait.js'
import { definedCommands, redisClient, redisServerFor, testPrefixes, type RedisServer } from './helpers/redis-server.js'

const LONG_MS = 60_000
const WINDOW = 'd2026-11-25'
const ZERO: QuotaUsage = { sessions: 0, seconds: 0, costMicros: 0 }

const CASES = {
  sessions: 'consume counts sessions up to the sessions budget, then refuses naming it, with the usage unchanged',
  unlimited: 'budgets left out are not limited',
  secondsAndCost: 'the seconds and costMicros budgets refuse once record reaches them',
  order: 'the first exhausted budget is named, in the order sessions, seconds, costMicros',
  refund: 'refund gives one session back, never below zero, and leaves seconds and cost alone',
  apart: 'keys and windows are counted apart',
  unknown: 'usage of an unknown key or window is zeros',
  parallel: '100 parallel consumes with a sessions budget of 7: exactly 7 are counted',
  record: 'record adds seconds and cost, and usage shows them',
  exact: 'sums stay exact integers: 100 parallel records, and amounts near 2^53',
  expires: 'a window\'s counts are forgotten ttlMs after they were counted',
  refundKeepsExpiry: 'a refund does not keep the counts longer',
  extends: 'a longer ttlMs keeps the counts longer; a later, shorter one does not shorten it'
} as const

const EXPIRY_CASES = [CASES.expires, CASES.refundKeepsExpiry, CASES.extends]

function consumeRequest (key: string, budgets: QuotaBudgets = {}, ttlMs = LONG_MS, window = WINDOW): ConsumeRequest {
  return { key, window, ttlMs, budgets }
}

/** Runs every case; returns the failures by case name. */
async function failures (cases: QuotaStoreContractCase[]): Promise<Map<string, Error>> {
  const failed = new Map<string, Error>()
  for (const { name, run } of cases) await run().catch((error: Error) => failed.set(name, error))
  return failed
}

/** Fake timers faking `performance.now()` for the memory stores, and the `advance` that moves them. */
function fakeClock (t: Test): Pick<QuotaStoreContractOptions, 'advance'> & { clock: FakeClock } {
  const clock = install({ toFake: ['performance'] })
  t.teardown(() => clock.uninstall())
  return { clock, advance: (ms) => { clock.tick(ms) } }
}

t.test('MemoryQuotaStore', async (t) => {
  // The store's clock is performance.now(): faked per case, so time passes only when a case says so.
  let clock: FakeClock | undefined
  for (const { name, run } of quotaStoreContract({
    createStore: () => new MemoryQuotaStore(),
    advance: (ms) => { clock?.tick(ms) }
  })) {
    t.test(name, async (t) => {
      clock = fakeClock(t).clock
      await run()
    })
  }

  t.test('size counts the keys of live windows; expired ones are dropped by the next call', async (t) => {
    const { clock } = fakeClock(t)
    const store = new MemoryQuotaStore()
    await store.consume(consumeRequest('user-1', {}, 100))
    await store.consume(consumeRequest('user-2', {}, 200))
    await store.record('user-1', 'd2026-11-26', { seconds: 1, costMicros: 1 }, 300)
    t.equal(store.size, 3)
    await store.consume(consumeRequest('user-1', {}, 250))
    clock.tick(100)
    t.equal(store.size, 3, 'user-1 was kept longer by its second consume')
    clock.tick(100)
    t.equal(store.size, 2, 'user-2 expired')
    clock.tick(50)
    t.equal(store.size, 1, 'user-1 expired at its later expiry')
    t.same(await store.usage('user-1', WINDOW), ZERO)
    clock.tick(50)
    t.equal(store.size, 0)
    await store.refund('user-1', 'd2026-11-26')
    t.equal(store.size, 0, 'a refund of nothing keeps nothing')
  })

  t.test('expiry order holds over many keys and extensions (against a plain model)', async (t) => {
    const { clock } = fakeClock(t)
    const store = new MemoryQuotaStore()
    const model = new Map<string, number>()
    let seed = 7
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
      return seed % n
    }
    let now = 0
    for (let step = 0; step < 3_000; step++) {
      const key = `user-${random(200)}`
      const ttlMs = 1 + random(500)
      if (random(2) === 0) await store.consume(consumeRequest(key, {}, ttlMs))
      else await store.record(key, WINDOW, { seconds: 1, costMicros: 1 }, ttlMs)
      const expiresAt = Math.max(model.get(key) ?? 0, now + ttlMs)
      model.set(key, expiresAt)
      const tick = random(4)
      clock.tick(tick)
      now += tick
      for (const [name, at] of model) if (at <= now) model.delete(name)
      if (store.size !== model.size) {
        t.fail(`step ${step}: ${store.size} live keys, expected ${model.size}`)
        return
      }
    }
    t.pass(`3000 steps, ${model.size} keys live at the end`)
    clock.tick(1_000)
    t.equal(store.size, 0, 'all expired')
  })

  t.test('a fractional ttlMs is rounded up to whole milliseconds, at least 1', async (t) => {
    const { clock } = fakeClock(t)
    const store = new MemoryQuotaStore()
    await store.consume(consumeRequest('user-1', {}, 0))
    await store.consume(consumeRequest('user-2', {}, 1.2))
    clock.tick(1)
    t.same(await store.usage('user-1', WINDOW), ZERO, 'a ttlMs of 0 keeps 1 ms')
    t.same(await store.usage('user-2', WINDOW), { ...ZERO, sessions: 1 }, '1.2 ms is kept 2 ms')
    clock.tick(1)
    t.same(await store.usage('user-2', WINDOW), ZERO)
  })

  t.test('the usage answered is a copy', async (t) => {
    const store = new MemoryQuotaStore()
    const result = await store.consume(consumeRequest('user-1'))
    result.usage.sessions = 99
    const usage = await store.usage('user-1', WINDOW)
    usage.seconds = 99
    t.same(await store.usage('user-1', WINDOW), { ...ZERO, sessions: 1 })
  })

  builtInStoreChecks(t, async () => new MemoryQuotaStore())
})

/** Checks both built-in stores share beyond the contract. */
function builtInStoreChecks (t: Test, createStore: (t: Test) => Promise<QuotaStore>): void {
  t.test('record rejects amounts that are not non-negative integers, and counts nothing', async (t) => {
    const store = await createStore(t)
    for (const [name, value] of [['seconds', 1.5], ['seconds', -1], ['costMicros', Number.NaN], ['costMicros', 2 ** 53], ['costMicros', Number.POSITIVE_INFINITY]] as const) {
      const ended = { seconds: 1, costMicros: 1, [name]: value }
      await t.rejects(store.record('user-1', WINDOW, ended, LONG_MS), new RangeError(`QuotaStore.record: ${name} must be a non-negative integer, got ${String(value)}`))
    }
    t.same(await store.usage('user-1', WINDOW), ZERO)
  })

  t.test('an infinite budget is not limited', async (t) => {
    const store = await createStore(t)
    await store.record('user-1', WINDOW, { seconds: 10, costMicros: 10 }, LONG_MS)
    const infinite = { sessions: Number.POSITIVE_INFINITY, seconds: Number.POSITIVE_INFINITY, costMicros: Number.POSITIVE_INFINITY }
    t.match(await store.consume(consumeRequest('user-1', infinite)), { ok: true, usage: { sessions: 1, seconds: 10, costMicros: 10 } })
  })

  t.test('a fractional budget: a session counts while the usage is below it', async (t) => {
    const store = await createStore(t)
    const request = consumeRequest('user-1', { sessions: 1.5 })
    t.match(await store.consume(request), { ok: true, usage: { sessions: 1 } })
    t.match(await store.consume(request), { ok: true, usage: { sessions: 2 } }, '1 is below 1.5')
    t.same(await store.consume(request), { ok: false, budget: 'sessions', usage: { ...ZERO, sessions: 2 } })
  })
}

// The suite itself: it fails stores that break the contract, so that it cannot pass vacuously. Each flaw
// below breaks one rule in a plain store that, without flaws, passes every case.

interface Flaws {
  ignoresBudgets?: boolean
  /** Reads the usage, lets other calls run, then counts: parallel consumes overshoot. */
  notAtomic?: boolean
  /** Checks the budgets in the order costMicros, seconds, sessions. */
  reversedOrder?: boolean
  refundsBelowZero?: boolean
  /** Adds cost as floating-point dollars. */
  costInDollars?: boolean
  /** Answers its own usage object, which later calls change. */
  liveUsage?: boolean
  /** Keeps counts for this share of ttlMs. */
  ttlShare?: number
  /** Sets the expiry from each call's ttlMs, also when that is sooner. */
  lastTtlWins?: boolean
  /** Forgets counts after `ttlMs` only after this many more ms (a store slow to expire). */
  forgetsLate?: number
  /** Resolves consume and record only after this many ms (a machine too slow to see counts kept). */
  slowMs?: number
}

interface Entry {
  usage: QuotaUsage
  dollars: number
  expiresAt: number
}

class FlawedStore implements QuotaStore {
  readonly #entries = new Map<string, Entry>()
  readonly #flaws: Flaws

  constructor (flaws: Flaws = {}) {
    this.#flaws = flaws
  }

  async consume ({ key, window, ttlMs, budgets }: ConsumeRequest): Promise<ConsumeResult> {
    const usage = { ...(this.#live(key, window)?.usage ?? ZERO) }
    if (this.#flaws.notAtomic === true) await yieldOnce()
    const order = ['sessions', 'seconds', 'costMicros'] as const
    for (const budget of this.#flaws.reversedOrder === true ? [...order].reverse() : order) {
      const limit = budgets[budget]
      if (this.#flaws.ignoresBudgets !== true && limit !== undefined && usage[budget] >= limit) return { ok: false, usage, budget }
    }
    const entry = this.#keep(key, window, ttlMs)
    entry.usage.sessions++
    const after = this.#flaws.liveUsage === true ? entry.usage : { ...entry.usage }
    await this.#slow()
    return { ok: true, usage: after }
  }

  async refund (key: string, window: string): Promise<void> {
    const entry = this.#live(key, window)
    if (entry !== undefined && (entry.usage.sessions > 0 || this.#flaws.refundsBelowZero === true)) entry.usage.sessions--
  }

  async record (key: string, window: string, { seconds, costMicros }: { seconds: number, costMicros: number }, ttlMs: number): Promise<void> {
    const entry = this.#keep(key, window, ttlMs)
    entry.usage.seconds += seconds
    if (this.#flaws.costInDollars === true) {
      entry.dollars += costMicros / 1e6
      entry.usage.costMicros = entry.dollars * 1e6
    } else {
      entry.usage.costMicros += costMicros
    }
    await this.#slow()
  }

  async usage (key: string, window: string): Promise<QuotaUsage> {
    return { ...(this.#live(key, window)?.usage ?? ZERO) }
  }

  #live (key: string, window: string): Entry | undefined {
    const entry = this.#entries.get(`${window}\0${key}`)
    if (entry === undefined || entry.expiresAt + (this.#flaws.forgetsLate ?? 0) > performance.now()) return entry
    this.#entries.delete(`${window}\0${key}`)
    return undefined
  }

  #keep (key: string, window: string, ttlMs: number): Entry {
    const expiresAt = performance.now() + ttlMs * (this.#flaws.ttlShare ?? 1)
    let entry = this.#live(key, window)
    if (entry === undefined) {
      entry = { usage: { ...ZERO }, dollars: 0, expiresAt }
      this.#entries.set(`${window}\0${key}`, entry)
    }
    entry.expiresAt = this.#flaws.lastTtlWins === true ? expiresAt : Math.max(entry.expiresAt, expiresAt)
    return entry
  }

  async #slow (): Promise<void> {
    if (this.#flaws.slowMs !== undefined) await sleep(this.#flaws.slowMs)
  }
}

t.test('the contract', async (t) => {
  t.test('a correct store passes every case in real time; each case has a fresh store, cleaned up', async (t) => {
    const created: QuotaStore[] = []
    const cleaned: QuotaStore[] = []
    const cases = quotaStoreContract({
      createStore: async () => {
        const store = new FlawedStore()
        created.push(store)
        return store
      },
      cleanup: (store) => { cleaned.push(store) }
    })
    t.same(cases.map(({ name }) => name), Object.values(CASES), 'the cases, in order')
    t.same([...(await failures(cases)).keys()], [])
    t.equal(new Set(created).size, cases.length, 'one store per case')
    t.same(cleaned, created, 'each cleaned up after its case')
  })

  t.test('the plain store passes with fake timers too', async (t) => {
    t.same([...(await failures(quotaStoreContract({ createStore: () => new FlawedStore(), ...fakeClock(t) }))).keys()], [])
  })

  /** Runs the contract on a store with `flaws`, with fake timers; returns the failures, checked to be assertion errors. */
  async function failuresWith (t: Test, flaws: Flaws): Promise<Map<string, Error>> {
    let cleanups = 0
    const cases = quotaStoreContract({ createStore: () => new FlawedStore(flaws), cleanup: () => { cleanups++ }, ...fakeClock(t) })
    const failed = await failures(cases)
    t.equal(cleanups, cases.length, 'failed cases clean up too')
    for (const error of failed.values()) t.type(error, AssertionError)
    return failed
  }

  t.test('a store that ignores budgets fails', async (t) => {
    const failed = await failuresWith(t, { ignoresBudgets: true })
    t.same([...failed.keys()], [CASES.sessions, CASES.secondsAndCost, CASES.order, CASES.refund, CASES.apart, CASES.parallel])
    t.match(failed.get(CASES.sessions)?.message, /a fourth consume: expected a refusal for 'sessions', got \{"ok":true/)
    t.match(failed.get(CASES.parallel)?.message, /the usage each counted consume saw/)
  })

  t.test('a store whose consume is not atomic overshoots in parallel', async (t) => {
    const failed = await failuresWith(t, { notAtomic: true })
    t.same([...failed.keys()], [CASES.parallel])
    t.match(failed.get(CASES.parallel)?.message, /the usage each counted consume saw/)
  })

  t.test('a store that checks the budgets in another order fails', async (t) => {
    const failed = await failuresWith(t, { reversedOrder: true })
    t.same([...failed.keys()], [CASES.order])
    t.match(failed.get(CASES.order)?.message, /all three exhausted: the exhausted budget/)
  })

  t.test('a store that refunds below zero fails', async (t) => {
    const failed = await failuresWith(t, { refundsBelowZero: true })
    t.same([...failed.keys()], [CASES.refund])
    t.match(failed.get(CASES.refund)?.message, /three refunds of two sessions/)
  })

  t.test('a store that sums cost as floating-point dollars fails', async (t) => {
    const failed = await failuresWith(t, { costInDollars: true })
    t.same([...failed.keys()], [CASES.exact, CASES.extends], '20 + 1 micro-dollars as dollars are not 21 either')
    t.match(failed.get(CASES.exact)?.message, /100 records of 7 s and \$0\.10/)
  })

  t.test('a store that answers its own usage object fails', async (t) => {
    const failed = await failuresWith(t, { liveUsage: true })
    t.ok(failed.has(CASES.parallel))
    t.match(failed.get(CASES.parallel)?.message, /the usage each counted consume saw/)
  })

  t.test('a store that expires counts early fails the expiry cases', async (t) => {
    const failed = await failuresWith(t, { ttlShare: 0.5 })
    t.same([...failed.keys()], EXPIRY_CASES)
    t.match(failed.get(CASES.expires)?.message, /1 ms before they expire: the counts are kept/)
    t.match(failed.get(CASES.extends)?.message, /past the first ttlMs \(300 ms\): the counts are kept/)
  })

  t.test('a store that lets a shorter ttlMs shorten the expiry fails', async (t) => {
    const failed = await failuresWith(t, { lastTtlWins: true })
    t.same([...failed.keys()], [CASES.extends])
    t.match(failed.get(CASES.extends)?.message, /past the first ttlMs \(300 ms\): the counts are kept/)
  })

  t.test('a store that never forgets fails the expiry cases', async (t) => {
    t.test('with fake timers', async (t) => {
      const failed = await failuresWith(t, { forgetsLate: Number.POSITIVE_INFINITY })
      t.same([...failed.keys()], EXPIRY_CASES)
      for (const error of failed.values()) t.match(error.message, /still counted 10000 ms after they should have expired/)
    })
    t.test('in real time, failing after expiryTimeoutMs', async (t) => {
      const cases = quotaStoreContract({ createStore: () => new FlawedStore({ forgetsLate: Number.POSITIVE_INFINITY }), expiryTimeoutMs: 100 })
      const failed = await failures(cases.filter(({ name }) => EXPIRY_CASES.includes(name as typeof EXPIRY_CASES[number])))
      t.same([...failed.keys()], EXPIRY_CASES)
      for (const error of failed.values()) t.match(error.message, /still counted 100 ms after they should have expired/)
    })
  })

  t.test('in real time, a machine too slow to see the counts kept does not fail the store', async (t) => {
    const cases = quotaStoreContract({ createStore: () => new FlawedStore({ slowMs: 350 }) })
    t.same([...(await failures(cases.filter(({ name }) => name === CASES.expires))).keys()], [])
  })

  t.test('a store that answers no usage fails, saying what it answered', async (t) => {
    class Silent extends FlawedStore {
      override async consume (): Promise<ConsumeResult> {
        return undefined as never
      }

      override async usage (): Promise<QuotaUsage> {
        return null as never
      }
    }
    const failed = await failures(quotaStoreContract({ createStore: () => new Silent() }))
    t.equal(failed.size, Object.keys(CASES).length, 'every case fails')
    t.match(failed.get(CASES.sessions)?.message, /consume 1 of 3: expected the session to be counted, got undefined/)
    t.match(failed.get(CASES.unknown)?.message, /a fresh store \(usage of user-1 in d2026-11-25\): usage is an object, got null/)
  })

  t.test('createStore is required', async (t) => {
    const message = /options\.createStore must be a function returning a fresh, empty QuotaStore/
    t.throws(() => quotaStoreContract({} as never), message)
    t.throws(() => quotaStoreContract(undefined as never), message)
  })
})

// RedisQuotaStore: the contract and what only Redis has, on a real redis-server.

const server = await redisServerFor(t)
if (server !== undefined) {
  const testPrefix = testPrefixes(t, server)
  t.test('RedisQuotaStore', async (t) => { defineRedisTests(t, server, testPrefix) })
}

function defineRedisTests (t: Test, server: RedisServer, testPrefix: () => string): void {
  /** A store with a prefix of its own, so tests never see each other's usage. */
  async function storeFor (t: Test, redis?: Redis): Promise<{ store: RedisQuotaStore, redis: Redis, prefix: string }> {
    redis ??= await redisClient(t, server)
    const prefix = testPrefix()
    return { store: new RedisQuotaStore({ client: redis, prefix }), redis, prefix }
  }

  // The contract on one client like an app instance's, a fresh prefix per case. Redis keeps the time,
  // so the expiry cases wait for it in real time, polling with a deadline.
  const contractClient = new Redis(server.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => contractClient.disconnect())
  for (const { name, run } of quotaStoreContract({ createStore: () => new RedisQuotaStore({ client: contractClient, prefix: testPrefix() }) })) {
    t.test(name, run)
  }

  builtInStoreChecks(t, async (t) => (await storeFor(t)).store)

  t.test('two app instances share one budget: 200 parallel consumes, sessions 50, exactly 50 counted', async (t) => {
    const prefix = testPrefix()
    const instances = [
      new RedisQuotaStore({ client: await redisClient(t, server), prefix }),
      new RedisQuotaStore({ client: await redisClient(t, server), prefix })
    ]
    const results = await Promise.all(Array.from({ length: 200 }, async (_, i) =>
      await (instances[i % 2] as RedisQuotaStore).consume(consumeRequest('user-1', { sessions: 50 }))))
    t.equal(results.filter((result) => result.ok).length, 50)
    t.ok(results.every((result) => result.ok || (result.budget === 'sessions' && result.usage.sessions === 50)))
    t.same(await (instances[1] as RedisQuotaStore).usage('user-1', WINDOW), { ...ZERO, sessions: 50 })
  })

  t.test('the usage hash: its name, fields and expiry, never shortened', async (t) => {
    const { store, redis, prefix } = await storeFor(t)
    const hash = `{${prefix}}quota:${WINDOW}:user-1`
    const pttl = async (): Promise<number> => await redis.pttl(hash)
    await store.consume(consumeRequest('user-1', {}, 10_000))
    t.same(await redis.keys(`{${prefix}}*`), [hash])
    const first = await pttl()
    t.ok(first > 9_000 && first <= 10_000, `consume sets the expiry: PTTL ${first}`)
    await store.consume(consumeRequest('user-1', {}, 1_000))
    await store.record('user-1', WINDOW, { seconds: 30, costMicros: 40 }, 1_000)
    t.ok(await pttl() > 9_000, 'a shorter ttlMs does not shorten it')
    await store.record('user-1', WINDOW, { seconds: 0, costMicros: 0 }, 20_000)
    const extended = await pttl()
    t.ok(extended > 19_000 && extended <= 20_000, `a longer one extends it: PTTL ${extended}`)
    await store.refund('user-1', WINDOW)
    t.equal(await store.consume(consumeRequest('user-1', { sessions: 1 }, 60_000)).then((result) => result.ok), false)
    t.ok(await pttl() <= extended, 'refund and a refused consume leave it alone')
    t.same(await redis.hgetall(hash), { sessions: '1', seconds: '30', cost: '40' })

    t.match(await store.consume(consumeRequest('user-2', { sessions: 0 })), { ok: false })
    await store.refund('user-3', WINDOW)
    t.same(await redis.keys(`{${prefix}}*`), [hash], 'a refused consume and a refund of nothing write nothing')

    await store.record('user-4', WINDOW, { seconds: 1, costMicros: 1 }, 0.2)
    await waitUntil(async () => await redis.exists(`{${prefix}}quota:${WINDOW}:user-4`) === 0, 'a ttlMs below 1 ms keeps 1 ms')
  })

  t.test('key names follow the client keyPrefix', async (t) => {
    const redis = await redisClient(t, server, { keyPrefix: 'app:' })
    const { store, prefix } = await storeFor(t, redis)
    await store.consume(consumeRequest('user-1'))
    await store.record('user-1', WINDOW, { seconds: 2, costMicros: 3 }, LONG_MS)
    await store.refund('user-1', WINDOW)
    const plain = await redisClient(t, server)
    t.same(await plain.keys(`*{${prefix}}*`), [`app:{${prefix}}quota:${WINDOW}:user-1`])
    t.same(await plain.hgetall(`app:{${prefix}}quota:${WINDOW}:user-1`), { sessions: '0', seconds: '2', cost: '3' })
    t.same(await store.usage('user-1', WINDOW), { sessions: 0, seconds: 2, costMicros: 3 })
  })

  t.test('stores with different prefixes do not see each other', async (t) => {
    const redis = await redisClient(t, server)
    const { store: one } = await storeFor(t, redis)
    const { store: two } = await storeFor(t, redis)
    await one.consume(consumeRequest('user-1', { sessions: 1 }))
    t.match(await two.consume(consumeRequest('user-1', { sessions: 1 })), { ok: true, usage: { sessions: 1 } })
    t.same(await one.usage('user-1', WINDOW), { ...ZERO, sessions: 1 })
  })

  t.test('the scripts are defined once per client', async (t) => {
    const redis = await redisClient(t, server)
    const defined = definedCommands(redis)
    await storeFor(t, redis)
    const consume = (redis as unknown as Record<string, unknown>).osharaVoiceV1QuotaConsume
    await storeFor(t, redis)
    t.same(defined, ['osharaVoiceV1QuotaConsume', 'osharaVoiceV1QuotaRefund', 'osharaVoiceV1QuotaRecord', 'osharaVoiceV1QuotaUsage'])
    t.equal((redis as unknown as Record<string, unknown>).osharaVoiceV1QuotaConsume, consume)
  })

  t.test('rejects a client that is not ioredis and a prefix that breaks the hash tag', async (t) => {
    const redis = await redisClient(t, server)
    const message = /"RedisQuotaStore client" must be an ioredis Redis or Cluster client/
    t.throws(() => new RedisQuotaStore({} as never), message)
    t.throws(() => new RedisQuotaStore({ client: {} as never }), message)
    for (const prefix of ['', 'a{b', 'a}b', 7]) {
      t.throws(() => new RedisQuotaStore({ client: redis, prefix: prefix as string }), /prefix" must be a non-empty string without \{ or \}/)
    }
    t.doesNotThrow(() => new RedisQuotaStore({ client: redis }), 'the default prefix')
  })

  t.test('bad constructor input, options left out included, throws the option error with its fix, never a TypeError', async (t) => {
    const redis = await redisClient(t, server)
    const bad: Array<[string, () => unknown, RegExp]> = [
      ['no options', () => new (RedisQuotaStore as new (options?: unknown) => unknown)(), /Fix: pass new RedisQuotaStore\(\{ client: new Redis/],
      ['the client itself instead of { client }', () => new RedisQuotaStore(redis as never), /Fix: pass new RedisQuotaStore\(\{ client: new Redis/],
      ['a prefix with a brace', () => new RedisQuotaStore({ client: redis, prefix: 'a{b' }), /Fix: e\.g\. prefix: 'myapp:oshara:'/]
    ]
    for (const [what, build, fix] of bad) {
      t.throws(build, { name: 'OsharaInvalidOptionsError', code: 'FST_OSHARA_INVALID_OPTIONS', message: fix }, what)
      try {
        build()
      } catch (error) {
        t.ok(error instanceof OsharaInvalidOptionsError && !(error instanceof TypeError), `${what}: the option error, not a TypeError`)
        t.match((error as OsharaInvalidOptionsError).fix, /\S/, `${what}: carries the fix`)
      }
    }
  })
}
