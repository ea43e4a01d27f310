import t from 'tap'
import { canonicalJson, deriveSigningKey, SIGNATURE_KEY, ToolSigner } from '../lib/tools/signature.js'
import { DEFAULTS } from '../lib/options/registry.js'
import { registerPublicError } from './helpers/app.js'

// The signature of session metadata (README "Agent tools"): its documented format, canonical form,
// expiry and keys; and the tools option's checks at register.

const KEY = Buffer.from('signing-key-4e1d0c9b8a7f6e5d4c3b2a19-0000')
const OTHER = Buffer.from('signing-key-ffffffffffffffffffffffffffff')
const NOW = Date.UTC(2026, 0, 1)
const signer = new ToolSigner({ signingKey: KEY, previousKeys: [], ttlMs: 60_000 })

t.test('canonical JSON: keys sorted at every level, arrays in order, no whitespace', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: [3, { z: null, y: 'é' }], c: true } }), '{"a":{"c":true,"d":[3,{"y":"é","z":null}]},"b":1}')
  t.equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }))
})

t.test('the signature has the documented format and is the documented HMAC', async (t) => {
  const { createHmac } = await import('node:crypto')
  const signed = signer.sign({ user_id: 'u1', at: new Date(NOW), skip: undefined }, true, NOW)
  const expiresAt = String(NOW / 1000 + 60)
  const value = signed[SIGNATURE_KEY] as string
  t.same(Object.keys(signed), ['user_id', 'at', SIGNATURE_KEY], 'the metadata as JSON sends it, plus the signature')
  t.equal(signed.at, new Date(NOW).toISOString())
  const mac = createHmac('sha256', KEY).update(`v1.${expiresAt}.1.{"at":"${new Date(NOW).toISOString()}","user_id":"u1"}`).digest('base64url')
  t.equal(value, `v1.${expiresAt}.1.${mac}`)
  t.equal(signer.sign(undefined, false, NOW)[SIGNATURE_KEY], `v1.${expiresAt}.0.${createHmac('sha256', KEY).update(`v1.${expiresAt}.0.{}`).digest('base64url')}`)
})

t.test('verify: reordered keys pass; edits, other keys, flags and expiry fail', async (t) => {
  const signed = signer.sign({ user_id: 'u1', org: { id: 'o', plan: 'pro' } }, false, NOW)
  const reordered = { [SIGNATURE_KEY]: signed[SIGNATURE_KEY], org: { plan: 'pro', id: 'o' }, user_id: 'u1' }
  t.same(signer.verify(reordered, NOW + 1000), { ok: true, followed: false, metadata: { org: { plan: 'pro', id: 'o' }, user_id: 'u1' } })
  t.same(signer.verify({ ...signed, user_id: 'u2' }, NOW), { ok: false, reason: 'mismatch' })
  t.same(signer.verify({ ...signed, org: { id: 'o', plan: 'free' } }, NOW), { ok: false, reason: 'mismatch' }, 'a nested edit')
  const flipped = (signed[SIGNATURE_KEY] as string).replace('.0.', '.1.')
  t.same(signer.verify({ ...signed, [SIGNATURE_KEY]: flipped }, NOW), { ok: false, reason: 'mismatch' }, 'the followed flag is signed')
  t.same(signer.verify(signed, NOW + 60_000), { ok: false, reason: 'expired' }, 'at expiry')
  t.same(signer.verify(signed, NOW + 59_000).ok, true, 'just before')
  t.same(signer.verify({ user_id: 'u1' }, NOW), { ok: false, reason: 'missing' })
  for (const bad of [42, '', 'v2.1.0.x', `v1.${NOW}.2.${'A'.repeat(43)}`, `${signed[SIGNATURE_KEY] as string}A`]) {
    t.same(signer.verify({ ...signed, [SIGNATURE_KEY]: bad }, NOW), { ok: false, reason: 'malformed' }, String(bad))
  }
  const rotated = new ToolSigner({ signingKey: OTHER, previousKeys: [KEY], ttlMs: 60_000 })
  t.equal(rotated.verify(signed, NOW).ok, true, 'a previous key verifies')
  t.equal(new ToolSigner({ signingKey: OTHER, previousKeys: [], ttlMs: 60_000 }).verify(signed, NOW).ok, false)
  t.throws(() => signer.sign({ [SIGNATURE_KEY]: 'x' }, false), { code: 'FST_OSHARA_INVALID_SESSION' })
})

t.test('the derived key depends on the secret only', async (t) => {
  t.same(deriveSigningKey('a-secret-of-16-chars'), deriveSigningKey('a-secret-of-16-chars'))
  t.notSame(deriveSigningKey('a-secret-of-16-chars'), deriveSigningKey('b-secret-of-16-chars'))
  t.equal(deriveSigningKey('a-secret-of-16-chars').length, 32)
})

t.test('tools options are checked at register, naming the option and the fix; secrets never echoed', async (t) => {
  const secret = 'a-good-secret-0123456789'
  const cases: Array<[unknown, RegExp]> = [
    [{}, /"tools\.secret" is required/],
    [{ secret: 'short' }, /"tools\.secret" is required: a string of at least 16/],
    [{ secret: 'has spaces in it ok?' }, /"tools\.secret"/],
    [{ secret, signingKey: 'too-short' }, /"tools\.signingKey" must be a string of at least 32/],
    [{ secret, previousSigningKeys: 'x' }, /"tools\.previousSigningKeys" must be an array/],
    [{ secret, previousSigningKeys: ['x'.repeat(32), 'short-old-key'] }, /"tools\.previousSigningKeys\[1\]" must be a string of at least 32/],
    [{ secret, prefix: 'tools' }, /"tools\.prefix" must be a static absolute path/],
    [{ secret, prefix: '/tools/' }, /"tools\.prefix"/],
    [{ secret, prefix: '/tools/:id' }, /"tools\.prefix"/],
    [{ secret, prefix: '/tools/*' }, /"tools\.prefix" must be a static absolute path/],
    [{ secret, prefix: '/tools(\\d+)' }, /"tools\.prefix" must be a static absolute path.*regular expressions \('\('\)/],
    [{ secret, secretHeader: 'x secret' }, /"tools\.secretHeader" must be a header name/],
    [{ secret, timeoutMs: 10_001 }, /"tools\.timeoutMs" must be an integer between 1 and 10000 ms/],
    [{ secret, timeout: 5 }, /"tools\.timeout" is not a known option/],
    ['yes', /"tools" must be an object/]
  ]
  for (const [tools, message] of cases) {
    const error = await registerPublicError({ tools } as never)
    t.equal(error.code, 'FST_OSHARA_INVALID_OPTIONS')
    t.match(error.message, message, JSON.stringify(tools))
    t.notMatch(error.message, /short-old-key|too-short|has spaces/, 'no value of a secret in the message')
  }
  t.same(DEFAULTS.tools, { prefix: '/oshara/tools', secretHeader: 'x-oshara-secret', timeoutMs: 8000 })
})
