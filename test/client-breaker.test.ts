import t, { type Test } from 'tap'
import { install, type Clock } from '@sinonjs/fake-timers'
import { createOsharaClient } from '../lib/client/client.js'
import { failure, ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'

// The circuit breaker: consecutive failed calls open it, a probe after the cooldown closes it.

const body = { agent: 'support-bot' }

// The breaker's clock is Date.now(): faked, so a cooldown passes when a test says so.
let clock: Clock
t.beforeEach(() => { clock = install({ toFake: ['Date'] }) })
t.afterEach(() => { clock.uninstall() })

async function setup (t: Test) {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: false, breaker: { failureThreshold: 3, cooldownMs: 200 } })
  t.teardown(() => client.close())
  return { emulator, client }
}

t.test('after failureThreshold failures calls fail fast; after the cooldown one probe goes through; a success closes it', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 500 }, 3)
  for (let i = 0; i < 3; i++) await failure(client.createSession(body))
  t.equal(sessionRequests(emulator).length, 3)

  const fast = await failure(client.createSession(body))
  t.match(fast, { code: 'FST_OSHARA_UNAVAILABLE', statusCode: 503, attempts: 0, outcome: 'not_created', detail: 'circuit open' })
  t.ok(fast.retryAfterMs !== undefined && fast.retryAfterMs > 0 && fast.retryAfterMs <= 200, 'Retry-After is the cooldown left')
  t.equal(sessionRequests(emulator).length, 3, 'the emulator was not reached')

  clock.tick(220)
  emulator.fault({ delayMs: 100 })
  const probe = client.createSession(body)
  const other = await failure(client.createSession(body))
  t.match(other, { code: 'FST_OSHARA_UNAVAILABLE', retryAfterMs: 1000 }, 'one probe at a time')
  t.ok(await probe, 'the probe went through')
  t.ok(await client.createSession(body), 'closed again')
  t.equal(sessionRequests(emulator).length, 5)
})

t.test('a failed probe opens the circuit for another cooldown', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 503 }, 4)
  for (let i = 0; i < 3; i++) await failure(client.createSession(body))
  clock.tick(220)
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_ERROR', attempts: 1 }, 'probe failed')
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UNAVAILABLE', attempts: 0 }, 'open again')
})

t.test('4xx answers never count: the upstream is up', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 500 }, 2)
  for (let i = 0; i < 2; i++) await failure(client.createSession(body))
  emulator.fault({ status: 404 })
  await failure(client.createSession(body))
  emulator.fault({ status: 500 }, 2)
  for (let i = 0; i < 2; i++) await failure(client.createSession(body))
  t.match(await failure(client.createSession({ agent: 'unknown-slug' })), { code: 'FST_OSHARA_AGENT_NOT_FOUND' }, 'still closed: the 404 reset the count')
})

t.test('an aborted probe frees the probe for the next call', async (t) => {
  const { emulator, client } = await setup(t)
  emulator.fault({ status: 500 }, 3)
  for (let i = 0; i < 3; i++) await failure(client.createSession(body))
  clock.tick(220)
  emulator.fault({ delayMs: 1000 })
  const controller = new AbortController()
  const probe = failure(client.createSession(body, { signal: controller.signal }))
  await emulator.waitForRequest((request) => request.fault?.delayMs === 1000)
  controller.abort()
  t.match(await probe, { code: 'FST_OSHARA_ABORTED' })
  t.ok(await client.createSession(body), 'the next call probes and closes the circuit')
})

t.test('breaker: false never opens', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: false, breaker: false })
  t.teardown(() => client.close())
  emulator.fault({ status: 500 }, 8)
  for (let i = 0; i < 8; i++) t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_UPSTREAM_ERROR' })
})
