// The idempotency scripts of `RedisSessionStore`. Each touches one key, `{prefix}idem:<id>`: a hash
// `{ fp, attempt, reply }` (`reply` once completed) that expires with its in-flight mark or its reply.

// KEYS: entry. ARGV: fingerprint, attempt, pending ms. Returns {'started'}, {'in-flight'}, {'completed', reply} or {'mismatch'}.
const BEGIN = `
local entry = redis.call('HMGET', KEYS[1], 'fp', 'reply')
if not entry[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'attempt', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(tonumber(ARGV[3]))))
  return {'started'}
end
if entry[1] ~= ARGV[1] then return {'mismatch'} end
if entry[2] then return {'completed', entry[2]} end
return {'in-flight'}
`

// KEYS: entry. ARGV: attempt, reply, ttl ms. Returns 1 when stored.
const COMPLETE = `
local entry = redis.call('HMGET', KEYS[1], 'attempt', 'reply')
if entry[1] ~= ARGV[1] or entry[2] then return 0 end
redis.call('HSET', KEYS[1], 'reply', ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(tonumber(ARGV[3]))))
return 1
`

// KEYS: entry. ARGV: attempt. Returns 1 when the attempt's in-flight mark was removed.
const ABANDON = `
local entry = redis.call('HMGET', KEYS[1], 'attempt', 'reply')
if entry[1] ~= ARGV[1] or entry[2] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`

// Command names carry the script version: change the Lua, bump the version.
export const IDEMPOTENCY_SCRIPTS = {
  osharaVoiceV1IdemBegin: { numberOfKeys: 1, lua: BEGIN },
  osharaVoiceV1IdemComplete: { numberOfKeys: 1, lua: COMPLETE },
  osharaVoiceV1IdemAbandon: { numberOfKeys: 1, lua: ABANDON }
} as const
