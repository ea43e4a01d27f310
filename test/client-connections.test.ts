import t from 'tap'
import { Agent } from 'undici'
import { createOsharaClient } from '../lib/client/client.js'
import { OsharaError } from '../lib/errors.js'
import { API_KEY, ORIGIN, startEmulator } from './helpers/emulator.js'

t.test('keep-alive: 100 sequential calls use at most a handful of connections', async (t) => {
  const emulator = await startEmulator(t)
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url })
  t.teardown(() => client.close())
  for (let i = 0; i < 100; i++) await client.createSession({ agent: 'support-bot' })
  t.equal(emulator.requests.length, 100)
  t.ok(emulator.connectionCount <= 3, `${emulator.connectionCount} connection(s)`)
})

t.test('a dispatcher passed in is used and never closed by the client', async (t) => {
  const emulator = await startEmulator(t)
  const agent = new Agent()
  t.teardown(() => agent.close())
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, dispatcher: agent })
  t.ok(await client.createSession({ agent: 'support-bot' }))
  await client.close()
  t.equal(agent.closed, false, 'still open')
  t.equal(agent.destroyed, false)
})

t.test('nothing secret in errors: message and toJSON never hold the API key', async (t) => {
  const emulator = await startEmulator(t, { apiKeys: ['sk_other'] })
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url, apiKey: API_KEY, retry: false })
  t.teardown(() => client.close())
  const failures: OsharaError[] = []
  for (const fault of [{}, { status: 500 }, { reset: true }, { malformed: true }]) {
    emulator.fault(fault)
    try {
      await client.createSession({ agent: 'support-bot', metadata: { email: 'ann@example.com' } })
    } catch (error) {
      failures.push(error as OsharaError)
    }
  }
  t.equal(failures.length, 4)
  for (const error of failures) {
    const visible = `${error.message} ${JSON.stringify(error)} ${String(error)} ${error.stack ?? ''}`
    t.notOk(visible.includes(API_KEY), `${error.code} does not hold the key`)
    t.notOk(visible.includes('ann@example.com'), `${error.code} does not hold metadata`)
    t.same(Object.keys(error.toJSON()).sort(), ['attempts', 'code', 'message', 'name', 'outcome', 'requestId', 'retryAfterMs', 'statusCode', 'upstreamStatus'])
  }
})
