import { randomBytes } from 'node:crypto'
import type { AcquireResult, SessionStore, SlotRequest } from './store.js'

/**
 * What the store needs of an ioredis `Redis` or `Cluster` client. Structural, so that the
 * published types do not require ioredis (an optional peer dependency) to be installed.
 */
export interface RedisScriptingClient {
  defineCommand (name: string, definition: { lua: string, numberOfKeys?: number }): void
}

export interface RedisSessionStoreOptions {
  /** An ioredis `Redis` or `Cluster` client. You own it: the store never connects, quits or reconfigures it. */
  client: RedisScriptingClient
  /**
   * Start of every key name, wrapped in braces as a Redis Cluster hash tag (`{oshara:}global`),
   * so that all keys of one store live on one Cluster slot. Stores with different prefixes
   * do not see each other's slots. Default `'oshara:'`.
   */
  prefix?: string
}

// Shared by the scripts. KEYS[1] is always `{prefix}global`; the other names are derived from it, so
// that a `keyPrefix` set on the ioredis client (which ioredis adds to KEYS only) applies to them too.
// Time comes from the Redis server, so instances with skewed clocks agree.
const LUA_HELPERS = `
local global = KEYS[1]
local names = string.sub(global, 1, -7)

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function duration_ms(value)
  return math.max(1, math.ceil(tonumber(value)))
end

-- A sorted set lives exactly as long as its last-expiring slot.
local function expire_with_last(zset)
  local last = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', zset, last[2])
end

local function is_live(slot_id, now)
  local expires_at = redis.call('ZSCORE', global, slot_id)
  return expires_at and tonumber(expires_at) > now
end

local function unlink_session(session_id, slot_id)
  local session_key = names .. 'session:' .. session_id
  if redis.call('GET', session_key) == slot_id then redis.call('DEL', session_key) end
end

local function forget_slot(slot_key, slot_id, key, session_id)
  redis.call('ZREM', names .. 'key:' .. key, slot_id)
  redis.call('ZREM', global, slot_id)
  redis.call('DEL', slot_key)
  if session_id then unlink_session(session_id, slot_id) end
end
`

// KEYS: global set, the key's set, slot hash. ARGV: slot id, key, concurrency, global cap ('' for none), pending ms.
// Returns {1}, or {0, scope, ms until the scope's first slot frees}.
const ACQUIRE = `${LUA_HELPERS}
local held, slot_key = KEYS[2], KEYS[3]
local slot_id, key, concurrency, cap = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', held, '-inf', now)
redis.call('ZREMRANGEBYSCORE', global, '-inf', now)

local function deny(scope, zset)
  local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if first[2] then return {0, scope, tonumber(first[2]) - now} end
  return {0, scope, 0}
end
if redis.call('ZCARD', held) >= concurrency then return deny('key', held) end
if cap and redis.call('ZCARD', global) >= cap then return deny('global', global) end

local expires_at = now + duration_ms(ARGV[5])
redis.call('ZADD', held, expires_at, slot_id)
redis.call('ZADD', global, expires_at, slot_id)
redis.call('HSET', slot_key, 'key', key)
redis.call('PEXPIREAT', slot_key, expires_at)
expire_with_last(held)
expire_with_last(global)
return {1}
`

// KEYS: global set, slot hash. ARGV: slot id, session id, hold ms. Returns 1 when bound.
const BIND = `${LUA_HELPERS}
local slot_key, slot_id, session_id = KEYS[2], ARGV[1], ARGV[2]
local now = now_ms()
if not is_live(slot_id, now) then return 0 end
local slot = redis.call('HMGET', slot_key, 'key', 'session')
if slot[2] then unlink_session(slot[2], slot_id) end

local expires_at = now + duration_ms(ARGV[3])
local held = names .. 'key:' .. slot[1]
local session_key = names .. 'session:' .. session_id
redis.call('ZADD', held, expires_at, slot_id)
redis.call('ZADD', global, expires_at, slot_id)
redis.call('HSET', slot_key, 'session', session_id)
redis.call('PEXPIREAT', slot_key, expires_at)
redis.call('SET', session_key, slot_id)
redis.call('PEXPIREAT', session_key, expires_at)
expire_with_last(held)
expire_with_last(global)
return 1
`

// KEYS: global set, slot hash. ARGV: slot id. Returns 1 when a slot was freed.
const RELEASE = `${LUA_HELPERS}
local slot = redis.call('HMGET', KEYS[2], 'key', 'session')
if not slot[1] then return 0 end
forget_slot(KEYS[2], ARGV[1], slot[1], slot[2])
return 1
`

// KEYS: global set, session key. ARGV: '1' when the key must match, that key. Returns 1 when a slot was freed.
const RELEASE_SESSION = `${LUA_HELPERS}
local slot_id = redis.call('GET', KEYS[2])
if not slot_id or not is_live(slot_id, now_ms()) then return 0 end
local slot_key = names .. 'slot:' .. slot_id
local slot = redis.call('HMGET', slot_key, 'key', 'session')
if ARGV[1] == '1' and slot[1] ~= ARGV[2] then return 0 end
forget_slot(slot_key, slot_id, slot[1], slot[2])
return 1
`

// Command names carry the script version: a client shared with another copy of this package reuses
// its definitions, which is right only while the Lua is the same. Change the Lua, bump the version.
const SCRIPTS = {
  osharaVoiceV1Acquire: { numberOfKeys: 3, lua: ACQUIRE },
  osharaVoiceV1Bind: { numberOfKeys: 2, lua: BIND },
  osharaVoiceV1Release: { numberOfKeys: 2, lua: RELEASE },
  osharaVoiceV1ReleaseSession: { numberOfKeys: 2, lua: RELEASE_SESSION }
} as const

type ScriptedClient = Record<keyof typeof SCRIPTS, (...keysThenArgs: Array<string | number>) => Promise<unknown>>

/** Defines the scripts on `client` unless an earlier store (or another copy of this package) already did. */
function defineScripts (client: RedisScriptingClient): ScriptedClient {
  for (const [name, definition] of Object.entries(SCRIPTS)) {
    if (typeof (client as unknown as Partial<ScriptedClient>)[name as keyof ScriptedClient] !== 'function') {
      client.defineCommand(name, definition)
    }
  }
  return client as unknown as ScriptedClient
}

/**
 * A `SessionStore` in Redis, shared by every app instance that uses the same client target
 * and prefix. Each operation is one Lua script (one round trip; ioredis sends it with EVALSHA
 * and falls back to EVAL once after a Redis restart), so it is atomic across instances.
 * Needs Redis 5 or later.
 *
 * Keys, all under the hash tag `{prefix}` so that one Cluster slot holds them all (the limiter
 * then runs on one Cluster shard), after the client's `keyPrefix` if it has one:
 * - `{prefix}global`: sorted set, every live slot id scored by its expiry (ms, Redis time);
 * - `{prefix}key:<key>`: sorted set, the key's slot ids scored by expiry;
 * - `{prefix}slot:<slotId>`: hash `{ key, session }`;
 * - `{prefix}session:<sessionId>`: string, the bound slot id.
 * Expired members are removed before counting; every key expires (PEXPIREAT) with its
 * last slot, so nothing is left behind when an app instance dies.
 */
export class RedisSessionStore implements SessionStore {
  readonly #client: ScriptedClient
  readonly #names: string
  readonly #global: string
  readonly #idPrefix = randomBytes(6).toString('base64url')
  #lastId = 0

  constructor ({ client, prefix = 'oshara:' }: RedisSessionStoreOptions) {
    if (typeof client?.defineCommand !== 'function') {
      throw new TypeError('RedisSessionStore: options.client must be an ioredis Redis or Cluster client')
    }
    if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
      throw new TypeError('RedisSessionStore: options.prefix must be a non-empty string without { or } (it becomes the Redis Cluster hash tag)')
    }
    this.#client = defineScripts(client)
    this.#names = `{${prefix}}`
    this.#global = `${this.#names}global`
  }

  async acquire ({ key, concurrency, global, pendingMs }: SlotRequest): Promise<AcquireResult> {
    const slotId = this.#idPrefix + (++this.#lastId).toString(36)
    const reply = await this.#client.osharaVoiceV1Acquire(
      this.#global, `${this.#names}key:${key}`, this.#slotKey(slotId),
      slotId, key, concurrency, global ?? '', pendingMs
    ) as [1] | [0, 'key' | 'global', number]
    if (reply[0] === 1) return { ok: true, slotId }
    return { ok: false, scope: reply[1], retryAfterMs: reply[2] }
  }

  async bind (slotId: string, sessionId: string, holdMs: number): Promise<boolean> {
    const reply = await this.#client.osharaVoiceV1Bind(this.#global, this.#slotKey(slotId), slotId, sessionId, holdMs)
    return reply === 1
  }

  async release (slotId: string): Promise<void> {
    await this.#client.osharaVoiceV1Release(this.#global, this.#slotKey(slotId), slotId)
  }

  async releaseSession (sessionId: string, key?: string): Promise<boolean> {
    const reply = await this.#client.osharaVoiceV1ReleaseSession(
      this.#global, `${this.#names}session:${sessionId}`, key === undefined ? '0' : '1', key ?? ''
    )
    return reply === 1
  }

  #slotKey (slotId: string): string {
    return `${this.#names}slot:${slotId}`
  }
}
