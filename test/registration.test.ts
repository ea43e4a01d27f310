import t from 'tap'
import Fastify from 'fastify'
import { MemorySessionStore } from '../lib/index.js'
import { normalizePluginOptions } from '../lib/options/normalize.js'
import { createRegistration } from '../lib/registration.js'
import type { OsharaVoiceOptions } from '../lib/types.js'
import { API_KEY, ORIGIN } from './helpers/emulator.js'

// Checking the options and building the services are two steps: normalizePluginOptions only
// checks and describes; createRegistration builds the stores, the limiter, the quota, the
// idempotency, the tracker, the signer and the client's connection pool.

const PLAIN = new Set<unknown>([Object.prototype, Array.prototype, Set.prototype, null])

/** Every object reachable from `value` that is not plain data (an object, array or set): a service would be one. */
function notPlain (value: unknown, path: string, found: string[], seen = new Set<unknown>()): string[] {
  if (value === null || typeof value !== 'object' || seen.has(value)) return found
  seen.add(value)
  if (!PLAIN.has(Object.getPrototypeOf(value))) found.push(`${path}: ${value.constructor.name}`)
  const children = value instanceof Set ? [...value].map((child, index) => [String(index), child] as const) : Object.entries(value)
  for (const [name, child] of children) notPlain(child, `${path}.${name}`, found, seen)
  return found
}

const everyService = {
  origin: ORIGIN,
  agent: 'support-bot',
  apiKey: API_KEY,
  limits: { concurrency: 1 },
  quota: { window: 'day', sessions: 10, minutes: 5 },
  idempotency: true,
  onSessionEnd: () => {},
  tools: { secret: 'a-tool-secret-of-some-length' }
} satisfies OsharaVoiceOptions

t.test('checking the options makes no service: the description holds plain data and functions only, and no connection pool', async (t) => {
  const checked = normalizePluginOptions(everyService)
  t.same(notPlain(checked, 'checked', []), [], 'no store, limiter, quota, idempotency, tracker, signer or client')
  t.ok(Object.isFrozen(checked))
  t.ok('own' in checked.upstream, "the plugin's own client is described by its checked options")
  t.notOk('close' in checked.upstream, 'not made')
  t.same({ limits: checked.limits?.store, tracking: checked.tracking?.store, idempotency: checked.idempotency?.store, quota: checked.quota?.store },
    { limits: undefined, tracking: undefined, idempotency: undefined, quota: undefined }, 'left-out stores are made by the registration')
})

t.test('without limits.store, one memory store holds the slots, the tracked sessions and the idempotent replies', async (t) => {
  const registration = createRegistration(normalizePluginOptions(everyService), undefined, Fastify().log)
  t.teardown(() => registration.client.close())
  const store = registration.limiter?.config.store
  t.type(store, MemorySessionStore)
  t.equal(registration.tracking?.store, store)
  t.equal(registration.idempotency?.config.store, store)
  t.equal(registration.tracking?.shared, false, 'a memory store is not shared with other instances')
})

t.test('without limits, tracking and idempotency each have a memory store of their own', async (t) => {
  const { limits: _limits, ...options } = everyService
  const registration = createRegistration(normalizePluginOptions(options), undefined, Fastify().log)
  t.teardown(() => registration.client.close())
  t.equal(registration.limiter, undefined)
  t.type(registration.tracking?.store, MemorySessionStore)
  t.type(registration.idempotency?.config.store, MemorySessionStore)
  t.not(registration.tracking?.store, registration.idempotency?.config.store)
})

t.test('a store given as limits.store serves the limiter, tracking and idempotency; tracking.store and idempotency.store take precedence', async (t) => {
  const limitsStore = new MemorySessionStore()
  const shared = createRegistration(normalizePluginOptions({ ...everyService, limits: { concurrency: 1, store: limitsStore } }), undefined, Fastify().log)
  t.teardown(() => shared.client.close())
  t.equal(shared.limiter?.config.store, limitsStore)
  t.equal(shared.tracking?.store, limitsStore)
  t.equal(shared.idempotency?.config.store, limitsStore)
  const trackingStore = new MemorySessionStore()
  const repliesStore = new MemorySessionStore()
  const own = createRegistration(normalizePluginOptions({
    ...everyService, limits: { concurrency: 1, store: limitsStore }, tracking: { store: trackingStore }, idempotency: { store: repliesStore }
  }), undefined, Fastify().log)
  t.teardown(() => own.client.close())
  t.equal(own.tracking?.store, trackingStore)
  t.equal(own.idempotency?.config.store, repliesStore)
})
