import { randomBytes } from 'node:crypto'
import type {
  AcquireResult, ClaimRequest, ClaimResult, RescheduleRequest, SessionState, SessionStore, SlotRequest, TrackedSession, TrackingStore, TrackRequest
} from './store.js'
import { scriptedClient, type RedisScriptingClient, type ScriptedClient } from './redis-client.js'
import { IDEMPOTENCY_SCRIPTS } from '../idempotency/redis-scripts.js'
import type { IdempotencyBeginRequest, IdempotencyBeginResult, IdempotencyStore } from '../idempotency/idempotency-store.js'

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

/** How long a tracked entry outlives its due time when no tracker touches it (every tracker is gone). */
const TRACKED_ENTRY_GRACE_MS = 24 * 60 * 60 * 1000

// Shared by the scripts. KEYS[1] is always `{prefix}global`; the other names are derived from it, so
// that a `keyPrefix` set on the ioredis client (which ioredis adds to KEYS only) applies to them too.
// Time comes from the Redis server, so instances with skewed clocks agree.
const LUA_HELPERS = `
local global = KEYS[1]
local names = string.sub(global, 1, -7)
local tracked = names .. 'tracked'

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function duration_ms(value)
  return math.max(1, math.ceil(tonumber(value)))
end

local function delay_ms(value)
  return math.max(0, math.ceil(tonumber(value)))
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

-- Frees the live slot bound to the session, if any; true when one was freed.
local function free_session_slot(session_id, now)
  local slot_id = redis.call('GET', names .. 'session:' .. session_id)
  if not slot_id or not is_live(slot_id, now) then return false end
  local slot_key = names .. 'slot:' .. slot_id
  local slot = redis.call('HMGET', slot_key, 'key', 'session')
  forget_slot(slot_key, slot_id, slot[1], slot[2])
  return true
end

local function track_key(session_id)
  return names .. 'track:' .. session_id
end

-- Makes the entry due at \`due\`. Its hash expires a day after that unless a tracker touches it again;
-- the due set lives as long as its last-expiring entry.
local function schedule(session_id, entry_key, due, now)
  redis.call('ZADD', tracked, due, session_id)
  local expires_at = due + ${TRACKED_ENTRY_GRACE_MS}
  redis.call('PEXPIREAT', entry_key, expires_at)
  local ttl = redis.call('PTTL', tracked)
  if ttl < 0 or now + ttl < expires_at then redis.call('PEXPIREAT', tracked, expires_at) end
end

-- Starts tracking a session afresh (key false: it holds no slot; quota_key false: no quota counts
-- it): an entry it had is replaced, its counts, lease and schedule with it.
local function start_tracking(session_id, key, quota_key, first_check, now)
  local entry_key = track_key(session_id)
  redis.call('DEL', entry_key)
  redis.call('HSET', entry_key, 'since', now, 'checks', 0, 'ended', 0, 'deliveries', 0)
  if key then redis.call('HSET', entry_key, 'key', key) end
  if quota_key then redis.call('HSET', entry_key, 'quota', quota_key) end
  schedule(session_id, entry_key, now + delay_ms(first_check), now)
end

-- The entry is its last claimer's (to reschedule or untrack) until another tracker claims it.
local function holds_lease(entry_key, owner)
  return redis.call('HGET', entry_key, 'owner') == owner
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

// KEYS: global set, slot hash. ARGV: slot id, session id, hold ms, first check ms ('' when not tracking), quota key ('' for none).
// Returns 1 when bound (and then tracked, with the slot's key, when asked).
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
if ARGV[4] ~= '' then start_tracking(session_id, slot[1], ARGV[5] ~= '' and ARGV[5], ARGV[4], now) end
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

// KEYS: global set. ARGV: session id, first check ms, key ('' for none), quota key ('' for none). A session already tracked starts afresh.
const TRACK = `${LUA_HELPERS}
start_tracking(ARGV[1], ARGV[3] ~= '' and ARGV[3], ARGV[4] ~= '' and ARGV[4], ARGV[2], now_ms())
return 1
`

// KEYS: global set. ARGV: owner, lease ms, limit.
// Returns {ms until the next unclaimed entry is due (false when none), {session id, key or false, age ms,
// checks, ended, deliveries, quota key or false}...}, earliest due first. Entries whose hash has expired are dropped on the way.
const CLAIM_DUE = `${LUA_HELPERS}
local owner, limit = ARGV[1], math.floor(tonumber(ARGV[3]))
local now = now_ms()
local lease_end = now + duration_ms(ARGV[2])
local reply = {false}
local claimed = {}
local count = 0
while count < limit do
  local due = redis.call('ZRANGEBYSCORE', tracked, '-inf', now, 'LIMIT', 0, limit - count)
  if #due == 0 then break end
  for _, session_id in ipairs(due) do
    local entry_key = track_key(session_id)
    local entry = redis.call('HMGET', entry_key, 'key', 'since', 'checks', 'ended', 'deliveries', 'quota')
    if entry[2] then
      redis.call('HSET', entry_key, 'owner', owner, 'leased', 1)
      schedule(session_id, entry_key, lease_end, now)
      count = count + 1
      claimed[session_id] = true
      reply[count + 1] = {session_id, entry[1], now - tonumber(entry[2]), tonumber(entry[3]), tonumber(entry[4]), tonumber(entry[5]), entry[6]}
    else
      redis.call('ZREM', tracked, session_id)
    end
  end
end
-- At most \`count\` of the first count + 1 entries were just claimed.
local first = redis.call('ZRANGE', tracked, 0, count, 'WITHSCORES')
for i = 1, #first, 2 do
  if not claimed[first[i]] then
    reply[1] = math.max(0, tonumber(first[i + 1]) - now)
    break
  end
end
return reply
`

// KEYS: global set, entry hash. ARGV: session id, owner, delay ms, checks ('' to keep), '1' to mark it ended,
// deliveries ('' to keep). Returns 1 when the owner held the lease.
const RESCHEDULE = `${LUA_HELPERS}
local entry_key, session_id = KEYS[2], ARGV[1]
if not holds_lease(entry_key, ARGV[2]) then return 0 end
local now = now_ms()
redis.call('HDEL', entry_key, 'leased')
if ARGV[4] ~= '' then redis.call('HSET', entry_key, 'checks', ARGV[4]) end
if ARGV[6] ~= '' then redis.call('HSET', entry_key, 'deliveries', ARGV[6]) end
if ARGV[5] == '1' then
  redis.call('HSET', entry_key, 'ended', 1)
  free_session_slot(session_id, now)
end
schedule(session_id, entry_key, now + delay_ms(ARGV[3]), now)
return 1
`

// KEYS: global set, entry hash. ARGV: session id, '1' when only that owner may, the owner.
// Returns 1 when an entry was removed (its slot, if it still held one, is freed too).
const UNTRACK = `${LUA_HELPERS}
local entry_key, session_id = KEYS[2], ARGV[1]
if redis.call('EXISTS', entry_key) == 0 then return 0 end
if ARGV[2] == '1' and not holds_lease(entry_key, ARGV[3]) then return 0 end
free_session_slot(session_id, now_ms())
redis.call('DEL', entry_key)
redis.call('ZREM', tracked, session_id)
return 1
`

// KEYS: global set, entry hash. ARGV: session id. Returns 1 when the session is tracked.
const MARK_ENDED = `${LUA_HELPERS}
local entry_key, session_id = KEYS[2], ARGV[1]
local ended = redis.call('HGET', entry_key, 'ended')
if not ended then return 0 end
-- An ended entry is left as it is: its delivery is under way or scheduled.
if ended == '1' then return 1 end
local now = now_ms()
free_session_slot(session_id, now)
redis.call('HSET', entry_key, 'ended', 1)
-- Due now, unless a claim's lease still runs (its owner sees \`ended\` at its next claim or reschedule).
local due = tonumber(redis.call('ZSCORE', tracked, session_id) or now)
local leased = due > now and redis.call('HGET', entry_key, 'leased') == '1'
if not leased then schedule(session_id, entry_key, math.min(due, now), now) end
return 1
`

// KEYS: global set, the key's set. Returns the tracked session ids bound to the key's live slots. A slot
// whose session was bound to another slot since still names it, but is no longer that session's.
const SESSIONS_OF = `${LUA_HELPERS}
local sessions = {}
for _, slot_id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now_ms(), '+inf')) do
  local session_id = redis.call('HGET', names .. 'slot:' .. slot_id, 'session')
  if session_id and redis.call('GET', names .. 'session:' .. session_id) == slot_id
    and redis.call('EXISTS', track_key(session_id)) == 1 then
    sessions[#sessions + 1] = session_id
  end
end
return sessions
`

// KEYS: global set, session key. ARGV: session id. Returns false when the session holds no live slot and is
// not tracked, else {ended (0 or 1), the key of its live slot, else of its entry (missing when none)}.
const SESSION_STATE = `${LUA_HELPERS}
local slot_id = redis.call('GET', KEYS[2])
if slot_id and is_live(slot_id, now_ms()) then
  return {0, redis.call('HGET', names .. 'slot:' .. slot_id, 'key')}
end
local entry = redis.call('HMGET', track_key(ARGV[1]), 'ended', 'key')
if not entry[1] then return false end
return {tonumber(entry[1]), entry[2]}
`

// Command names carry the script version: a client shared with another copy of this package reuses
// its definitions, which is right only while the Lua is the same. Change the Lua, bump the version.
const SCRIPTS = {
  osharaVoiceV2Acquire: { numberOfKeys: 3, lua: ACQUIRE },
  osharaVoiceV2Bind: { numberOfKeys: 2, lua: BIND },
  osharaVoiceV2Release: { numberOfKeys: 2, lua: RELEASE },
  osharaVoiceV2ReleaseSession: { numberOfKeys: 2, lua: RELEASE_SESSION },
  osharaVoiceV2Track: { numberOfKeys: 1, lua: TRACK },
  osharaVoiceV2ClaimDue: { numberOfKeys: 1, lua: CLAIM_DUE },
  osharaVoiceV2Reschedule: { numberOfKeys: 2, lua: RESCHEDULE },
  osharaVoiceV2Untrack: { numberOfKeys: 2, lua: UNTRACK },
  osharaVoiceV2MarkEnded: { numberOfKeys: 2, lua: MARK_ENDED },
  osharaVoiceV3SessionsOf: { numberOfKeys: 2, lua: SESSIONS_OF },
  osharaVoiceV2SessionState: { numberOfKeys: 2, lua: SESSION_STATE }
} as const

type ClaimReply = [number | null, ...Array<[string, string | null, number, number, number, number, string | null]>]

/**
 * A `SessionStore` in Redis, shared by every app instance that uses the same client target
 * and prefix, that also backs session tracking (`TrackingStore`). Each operation is one Lua
 * script (one round trip; ioredis sends it with EVALSHA and falls back to EVAL once after a
 * Redis restart), so it is atomic across instances. Needs Redis 5 or later.
 *
 * Keys, all under the hash tag `{prefix}` so that one Cluster slot holds them all (the limiter
 * then runs on one Cluster shard), after the client's `keyPrefix` if it has one:
 * - `{prefix}global`: sorted set, every live slot id scored by its expiry (ms, Redis time);
 * - `{prefix}key:<key>`: sorted set, the key's slot ids scored by expiry;
 * - `{prefix}slot:<slotId>`: hash `{ key, session }`;
 * - `{prefix}session:<sessionId>`: string, the bound slot id;
 * - `{prefix}tracked`: sorted set, every tracked session id scored by when it is due (a claimed
 *   entry's score is its lease end, so it becomes due again by itself if its owner dies);
 * - `{prefix}track:<sessionId>`: hash `{ key, since, checks, ended, deliveries, owner, leased }`:
 *   `owner` is the tracker that claimed it last (it may reschedule or untrack it until another
 *   tracker claims it); `leased` is set by a claim and cleared by the owner's reschedule.
 * - `{prefix}idem:<id>`: hash `{ fp, attempt, reply }`, one idempotent request (see `IdempotencyStore`);
 *   it expires with its in-flight mark, or `ttlMs` after its reply was stored.
 * Expired members are removed before counting; every slot key expires (PEXPIREAT) with its
 * last slot, so nothing is left behind when an app instance dies. A tracked entry's hash expires
 * 24 hours after it is due, renewed each time a tracker claims or reschedules it, and
 * `{prefix}tracked` with its last-expiring entry: an entry lasts as long as a tracker keeps
 * handling it (however long `maxTrackMs` is), and is gone a day after the last tracker stopped.
 */
export class RedisSessionStore implements SessionStore, TrackingStore, IdempotencyStore {
  readonly #client: ScriptedClient<typeof SCRIPTS>
  readonly #replies: ScriptedClient<typeof IDEMPOTENCY_SCRIPTS>
  readonly #names: string
  readonly #global: string
  readonly #idPrefix = randomBytes(6).toString('base64url')
  #lastId = 0

  constructor (options: RedisSessionStoreOptions) {
    const { client, prefix = 'oshara:' } = options ?? {}
    this.#client = scriptedClient('RedisSessionStore', client, prefix, SCRIPTS)
    this.#replies = scriptedClient('RedisSessionStore', client, prefix, IDEMPOTENCY_SCRIPTS)
    this.#names = `{${prefix}}`
    this.#global = `${this.#names}global`
  }

  async acquire ({ key, concurrency, global, pendingMs }: SlotRequest): Promise<AcquireResult> {
    const slotId = this.#idPrefix + (++this.#lastId).toString(36)
    const reply = await this.#client.osharaVoiceV2Acquire(
      this.#global, `${this.#names}key:${key}`, this.#slotKey(slotId),
      slotId, key, concurrency, global ?? '', pendingMs
    ) as [1] | [0, 'key' | 'global', number]
    if (reply[0] === 1) return { ok: true, slotId }
    return { ok: false, scope: reply[1], retryAfterMs: reply[2] }
  }

  async bind (slotId: string, sessionId: string, holdMs: number, track?: TrackRequest): Promise<boolean> {
    const reply = await this.#client.osharaVoiceV2Bind(
      this.#global, this.#slotKey(slotId), slotId, sessionId, holdMs, track?.firstCheckMs ?? '', track?.quotaKey ?? ''
    )
    return reply === 1
  }

  async release (slotId: string): Promise<void> {
    await this.#client.osharaVoiceV2Release(this.#global, this.#slotKey(slotId), slotId)
  }

  async releaseSession (sessionId: string, key?: string): Promise<boolean> {
    const reply = await this.#client.osharaVoiceV2ReleaseSession(
      this.#global, `${this.#names}session:${sessionId}`, key === undefined ? '0' : '1', key ?? ''
    )
    return reply === 1
  }

  async track (sessionId: string, { firstCheckMs, key, quotaKey }: TrackRequest): Promise<void> {
    await this.#client.osharaVoiceV2Track(this.#global, sessionId, firstCheckMs, key ?? '', quotaKey ?? '')
  }

  async claimDue ({ owner, leaseMs, limit }: ClaimRequest): Promise<ClaimResult> {
    const [nextDueMs, ...entries] = await this.#client.osharaVoiceV2ClaimDue(this.#global, owner, leaseMs, limit) as ClaimReply
    const sessions = entries.map(([sessionId, key, ageMs, checks, ended, deliveries, quotaKey]): TrackedSession =>
      ({ sessionId, key: key ?? undefined, quotaKey: quotaKey ?? undefined, ageMs, checks, ended: ended === 1, deliveries }))
    return { sessions, nextDueMs: nextDueMs ?? undefined }
  }

  async reschedule (sessionId: string, owner: string, { delayMs, checks, ended, deliveries }: RescheduleRequest): Promise<boolean> {
    const reply = await this.#client.osharaVoiceV2Reschedule(
      this.#global, this.#trackKey(sessionId), sessionId, owner, delayMs, checks ?? '', ended === true ? '1' : '', deliveries ?? ''
    )
    return reply === 1
  }

  async untrack (sessionId: string, owner?: string): Promise<boolean> {
    const reply = await this.#client.osharaVoiceV2Untrack(
      this.#global, this.#trackKey(sessionId), sessionId, owner === undefined ? '0' : '1', owner ?? ''
    )
    return reply === 1
  }

  async markEnded (sessionId: string): Promise<boolean> {
    return await this.#client.osharaVoiceV2MarkEnded(this.#global, this.#trackKey(sessionId), sessionId) === 1
  }

  async sessionsOf (key: string): Promise<string[]> {
    return await this.#client.osharaVoiceV3SessionsOf(this.#global, `${this.#names}key:${key}`) as string[]
  }

  async beginIdempotent ({ key, fingerprint, attempt, pendingMs }: IdempotencyBeginRequest): Promise<IdempotencyBeginResult> {
    const [state, reply] = await this.#replies.osharaVoiceV1IdemBegin(this.#replyKey(key), fingerprint, attempt, pendingMs) as [IdempotencyBeginResult['state'], string?]
    return state === 'completed' ? { state, reply: reply as string } : { state }
  }

  async completeIdempotent (key: string, attempt: string, reply: string, ttlMs: number): Promise<boolean> {
    return await this.#replies.osharaVoiceV1IdemComplete(this.#replyKey(key), attempt, reply, ttlMs) === 1
  }

  async abandonIdempotent (key: string, attempt: string): Promise<boolean> {
    return await this.#replies.osharaVoiceV1IdemAbandon(this.#replyKey(key), attempt) === 1
  }

  #replyKey (key: string): string {
    return `${this.#names}idem:${key}`
  }

  async sessionState (sessionId: string): Promise<SessionState | undefined> {
    const reply = await this.#client.osharaVoiceV2SessionState(this.#global, `${this.#names}session:${sessionId}`, sessionId) as [number, string?] | null
    return reply === null ? undefined : { key: reply[1] ?? undefined, ended: reply[0] === 1 }
  }

  #slotKey (slotId: string): string {
    return `${this.#names}slot:${slotId}`
  }

  #trackKey (sessionId: string): string {
    return `${this.#names}track:${sessionId}`
  }
}
