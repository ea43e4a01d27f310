import { scriptedClient, type RedisScriptingClient, type ScriptedClient } from '../limits/redis-client.js'
import { checkAmount } from './memory-quota-store.js'
import type { ConsumeRequest, ConsumeResult, QuotaBudgets, QuotaStore, QuotaUsage } from './quota-store.js'

export interface RedisQuotaStoreOptions {
  /** An ioredis `Redis` or `Cluster` client. You own it: the store never connects, quits or reconfigures it. */
  client: RedisScriptingClient
  /**
   * Start of every key name, wrapped in braces as a Redis Cluster hash tag (`{oshara:}quota:...`),
   * so that all keys of one store live on one Cluster slot. Stores with different prefixes do not
   * see each other's usage. Default `'oshara:'`, shared with a `RedisSessionStore` without harm.
   */
  prefix?: string
}

// Shared by the scripts. KEYS[1] is always the usage hash of one key in one window: fields `sessions`,
// `seconds` and `cost` (micro-dollars), integers, missing ones 0. ioredis adds a client's `keyPrefix` to it.
const LUA_HELPERS = `
local counts = KEYS[1]

local function usage()
  local fields = redis.call('HMGET', counts, 'sessions', 'seconds', 'cost')
  return tonumber(fields[1]) or 0, tonumber(fields[2]) or 0, tonumber(fields[3]) or 0
end

-- Keeps the hash at least ttl ms from now: a later expiry it has is kept.
local function keep_for(ttl)
  ttl = math.max(1, math.ceil(tonumber(ttl)))
  if redis.call('PTTL', counts) < ttl then redis.call('PEXPIRE', counts, ttl) end
end
`

// KEYS: usage hash. ARGV: ttl ms, then the sessions, seconds and cost budgets ('' for none).
// Returns {'' when counted or the exhausted budget's name, sessions, seconds, cost}, the usage after it.
const CONSUME = `${LUA_HELPERS}
local sessions, seconds, cost = usage()
local function exhausted(used, budget)
  budget = tonumber(budget)
  return budget ~= nil and not (used < budget)
end
if exhausted(sessions, ARGV[2]) then return {'sessions', sessions, seconds, cost} end
if exhausted(seconds, ARGV[3]) then return {'seconds', sessions, seconds, cost} end
if exhausted(cost, ARGV[4]) then return {'costMicros', sessions, seconds, cost} end
sessions = redis.call('HINCRBY', counts, 'sessions', 1)
keep_for(ARGV[1])
return {'', sessions, seconds, cost}
`

// KEYS: usage hash. Gives back one session, never below zero; leaves the expiry alone.
const REFUND = `${LUA_HELPERS}
local sessions = usage()
if sessions > 0 then redis.call('HINCRBY', counts, 'sessions', -1) end
return 1
`

// KEYS: usage hash. ARGV: seconds, cost, ttl ms.
const RECORD = `${LUA_HELPERS}
redis.call('HINCRBY', counts, 'seconds', ARGV[1])
redis.call('HINCRBY', counts, 'cost', ARGV[2])
keep_for(ARGV[3])
return 1
`

// KEYS: usage hash. Returns {sessions, seconds, cost}.
const USAGE = `${LUA_HELPERS}
return {usage()}
`

// Command names carry the script version: a client shared with another copy of this package reuses
// its definitions, which is right only while the Lua is the same. Change the Lua, bump the version.
const SCRIPTS = {
  osharaVoiceV1QuotaConsume: { numberOfKeys: 1, lua: CONSUME },
  osharaVoiceV1QuotaRefund: { numberOfKeys: 1, lua: REFUND },
  osharaVoiceV1QuotaRecord: { numberOfKeys: 1, lua: RECORD },
  osharaVoiceV1QuotaUsage: { numberOfKeys: 1, lua: USAGE }
} as const

type UsageReply = [number, number, number]

/**
 * A `QuotaStore` in Redis, shared by every app instance that uses the same client target and
 * prefix. Each operation is one Lua script (one round trip), so it is atomic across instances:
 * parallel `consume`s never count past a budget. Needs Redis 5 or later.
 *
 * Keys, under the hash tag `{prefix}`, after the client's `keyPrefix` if it has one:
 * - `{prefix}quota:<window>:<key>`: hash `{ sessions, seconds, cost }` (cost in micro-dollars),
 *   integers; a missing field is 0. It expires (PEXPIRE) `ttlMs` after the last `consume` or
 *   `record` that counted in it, and never sooner than an earlier one asked for; `refund` and a
 *   refused `consume` leave the expiry alone. A refused `consume` writes nothing.
 * Window ids are the plugin's (`d2026-11-25`, `m2026-11`, `w3600000:493`): where one ends shows
 * in its own form, so each key and window pair names its own hash.
 */
export class RedisQuotaStore implements QuotaStore {
  readonly #client: ScriptedClient<typeof SCRIPTS>
  readonly #names: string

  constructor (options: RedisQuotaStoreOptions) {
    const { client, prefix = 'oshara:' } = options ?? {}
    this.#client = scriptedClient('RedisQuotaStore', client, prefix, SCRIPTS)
    this.#names = `{${prefix}}quota:`
  }

  async consume ({ key, window, ttlMs, budgets }: ConsumeRequest): Promise<ConsumeResult> {
    const [budget, ...counts] = await this.#client.osharaVoiceV1QuotaConsume(
      this.#countsKey(key, window), ttlMs, budgetArg(budgets.sessions), budgetArg(budgets.seconds), budgetArg(budgets.costMicros)
    ) as ['' | Exclude<ConsumeResult, { ok: true }>['budget'], ...UsageReply]
    const usage = usageOf(counts)
    return budget === '' ? { ok: true, usage } : { ok: false, usage, budget }
  }

  async refund (key: string, window: string): Promise<void> {
    await this.#client.osharaVoiceV1QuotaRefund(this.#countsKey(key, window))
  }

  async record (key: string, window: string, { seconds, costMicros }: { seconds: number, costMicros: number }, ttlMs: number): Promise<void> {
    checkAmount('seconds', seconds)
    checkAmount('costMicros', costMicros)
    await this.#client.osharaVoiceV1QuotaRecord(this.#countsKey(key, window), seconds, costMicros, ttlMs)
  }

  async usage (key: string, window: string): Promise<QuotaUsage> {
    return usageOf(await this.#client.osharaVoiceV1QuotaUsage(this.#countsKey(key, window)) as UsageReply)
  }

  #countsKey (key: string, window: string): string {
    return `${this.#names}${window}:${key}`
  }
}

/** A budget as the scripts take it: '' when it is not limited (left out, or infinite). */
function budgetArg (budget: QuotaBudgets[keyof QuotaBudgets]): number | '' {
  return budget === undefined || budget === Number.POSITIVE_INFINITY ? '' : budget
}

function usageOf ([sessions, seconds, costMicros]: UsageReply): QuotaUsage {
  return { sessions, seconds, costMicros }
}
