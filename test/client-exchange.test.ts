import { createServer, type AddressInfo, type Socket } from 'node:net'
import t from 'tap'
import { Agent, Pool } from 'undici'
import { createOsharaClient } from '../lib/client/client.js'
import { failure, ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'
import { waitUntil } from './helpers/wait.js'

// Each attempt is one exchange over undici's dispatch API: these are the paths a request() call used to cover.

const body = { agent: 'support-bot' }

t.test('an attempt that times out while queued behind a busy connection fails at its timeout and is never sent', async (t) => {
  const emulator = await startEmulator(t)
  const pool = new Pool(emulator.url, { connections: 1, pipelining: 1 })
  t.teardown(() => pool.close())
  const patient = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, dispatcher: pool, timeoutMs: 10_000 })
  const hasty = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, dispatcher: pool, timeoutMs: 200, retry: { retries: 0 } })
  emulator.fault({ delayMs: 1000 })
  const first = patient.createSession(body)
  await emulator.waitForRequest(() => true)
  const queued = await failure(hasty.createSession(body))
  t.match(queued, { code: 'FST_OSHARA_TIMEOUT', attempts: 1, outcome: 'not_created' }, 'the queued call fails at its own timeout, not when the connection frees')
  t.ok((await first).session_id, 'the call ahead of it is answered')
  // The queued request gets the connection once the first is answered, and is aborted as it starts.
  await waitUntil(() => pool.stats.queued === 0 && pool.stats.running === 0, 'the pool has nothing queued or running')
  t.equal(sessionRequests(emulator).length, 1, 'only the first request reached Oshara')
})

t.test('an attempt that times out queued behind a busy connection created nothing: it is retried like a connect failure', async (t) => {
  const emulator = await startEmulator(t)
  const pool = new Pool(emulator.url, { connections: 1, pipelining: 1 })
  t.teardown(() => pool.close())
  const patient = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, dispatcher: pool })
  // retry.onTimeout stays false: only a timeout before the request was written is retried.
  const hasty = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, dispatcher: pool, timeoutMs: 100, retry: { minDelayMs: 1, maxDelayMs: 5 } })
  emulator.fault({ delayMs: 5000 })
  const controller = new AbortController()
  const first = failure(patient.createSession(body, { signal: controller.signal }))
  await emulator.waitForRequest(() => true)
  t.match(await failure(hasty.createSession(body)), { code: 'FST_OSHARA_TIMEOUT', statusCode: 504, attempts: 3, outcome: 'not_created' })
  controller.abort()
  await first
  await waitUntil(() => pool.stats.queued === 0 && pool.stats.running === 0, 'the pool has nothing queued or running')
  t.equal(sessionRequests(emulator).length, 1, 'none of the three attempts reached Oshara')
})

t.test('an attempt that times out while still connecting (TLS handshake unanswered) created nothing: outcome not_created, retried', async (t) => {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const baseUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  const client = createOsharaClient({ origin: ORIGIN, baseUrl, timeoutMs: 100, retry: { minDelayMs: 1, maxDelayMs: 5 } })
  t.teardown(async () => {
    // Ending the handshakes fails the requests still queued, so that the pool can close.
    for (const socket of sockets) socket.destroy()
    await client.close()
    await new Promise((resolve) => server.close(resolve))
  })
  t.match(await failure(client.createSession(body)), { code: 'FST_OSHARA_TIMEOUT', attempts: 3, outcome: 'not_created', detail: /no connection/ })
  t.ok(sockets.size > 0, 'connections were opened and never answered')
})

t.test('a dispatcher that throws instead of calling back fails the attempt as a connection failure', async (t) => {
  const emulator = await startEmulator(t)
  const agent = new Agent()
  t.teardown(() => agent.close())
  const throwing = agent.compose(() => () => { throw new Error('refused by an interceptor') })
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, dispatcher: throwing, retry: { retries: 0 } })
  const error = await failure(client.createSession(body))
  t.match(error, { code: 'FST_OSHARA_UNAVAILABLE', attempts: 1 })
  t.equal((error.cause as Error).message, 'refused by an interceptor', 'the interceptor\'s error is the cause')
  t.equal(sessionRequests(emulator).length, 0)
})
