import t from 'tap'
import { Pool } from 'undici'
import { waitUntil } from './helpers/wait.js'
import { createOsharaClient } from '../lib/client/client.js'
import { failure, ORIGIN, recordingLogger, sessionRequests, startEmulator } from './helpers/emulator.js'

// An aborted signal ends the call at once, wherever it is, and never starts another attempt.

const body = { agent: 'support-bot' }

t.test('abort during a slow attempt: rejects at once and the emulator sees the request closed', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url })
  t.teardown(() => client.close())
  emulator.fault({ delayMs: 5000 })
  const controller = new AbortController()
  const call = failure(client.createSession(body, { signal: controller.signal }))
  await emulator.waitForRequest(() => true)
  controller.abort()
  const error = await call
  t.match(error, { code: 'FST_OSHARA_ABORTED', statusCode: 499, attempts: 1, outcome: 'unknown' }, 'aborted, not timed out after 10 s')
  const seen = await emulator.waitForRequest((request) => request.aborted)
  t.equal(seen.status, undefined, 'never answered')
  t.equal(emulator.sessions.size, 0, 'no session was minted')
})

for (const [name, status, outcome] of [
  ['after a 503 says outcome not_created (nothing can have been created)', 503, 'not_created'],
  ['after a retried 500 says outcome unknown (the 500 may have created a session)', 500, 'unknown']
] as const) {
  t.test(`an abort during a retry delay ${name}; rejects at once, no further attempt`, async (t) => {
    const emulator = await startEmulator(t)
    const logger = recordingLogger()
    const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, logger, deadlineMs: 120_000, retry: { maxRetryAfterMs: 60_000, statusCodes: [500, 503] } })
    t.teardown(() => client.close())
    emulator.fault({ status, headers: { 'retry-after': '60' } }, 3)
    const controller = new AbortController()
    const call = failure(client.createSession(body, { signal: controller.signal }))
    // The retry line is logged as the 60 s delay starts.
    await waitUntil(() => logger.lines.some((line) => line.message === 'oshara: retrying upstream call'), 'the client waits to retry')
    controller.abort()
    t.match(await call, { code: 'FST_OSHARA_ABORTED', attempts: 1, outcome }, 'rejected long before the 60 s delay would end')
    t.equal(sessionRequests(emulator).length, 1, 'no attempt after the abort')
  })
}

t.test('an already aborted signal: nothing is sent, and the outcome says not_created, as the decorator\'s does', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url })
  t.teardown(() => client.close())
  t.match(await failure(client.createSession(body, { signal: AbortSignal.abort() })), { code: 'FST_OSHARA_ABORTED', attempts: 0, outcome: 'not_created' })
  t.equal(emulator.requests.length, 0)
})

t.test('an abort during the attempt that aborts before the backoff is taken: no further attempt', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, retry: { minDelayMs: 1, maxDelayMs: 1 } })
  t.teardown(() => client.close())
  emulator.fault({ status: 503 }, 3)
  const controller = new AbortController()
  // The retry warning is logged after an attempt failed and before the delay starts: abort right there.
  const logger = { info: () => {}, warn: () => controller.abort() }
  t.match(await failure(client.createSession(body, { signal: controller.signal, log: logger })), { code: 'FST_OSHARA_ABORTED', attempts: 1 })
  t.equal(sessionRequests(emulator).length, 1)
})

t.test('an abort while the attempt waits for a busy connection says outcome not_created: its request was never sent', async (t) => {
  const emulator = await startEmulator(t)
  const pool = new Pool(emulator.url, { connections: 1, pipelining: 1 })
  t.teardown(() => pool.close())
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, dispatcher: pool })
  emulator.fault({ delayMs: 1000 })
  const first = client.createSession(body)
  await emulator.waitForRequest(() => true)
  const controller = new AbortController()
  const queued = failure(client.createSession(body, { signal: controller.signal }))
  await waitUntil(() => pool.stats.queued === 1, 'the second call is queued')
  controller.abort()
  t.match(await queued, { code: 'FST_OSHARA_ABORTED', attempts: 1, outcome: 'not_created' })
  t.ok((await first).session_id, 'the call ahead of it is answered')
  await waitUntil(() => pool.stats.queued === 0 && pool.stats.running === 0, 'the pool has nothing queued or running')
  t.equal(sessionRequests(emulator).length, 1, 'only the first request reached Oshara')
})
