import t, { type Test } from 'tap'
import http from 'node:http'
import { createOsharaEmulator, type OsharaEmulator } from '../lib/emulator.js'

const ORIGIN = 'https://app.example.com'
const SESSION_PATH = '/api/agents/agent-session/'

async function start (t: Test): Promise<OsharaEmulator> {
  const emulator = await createOsharaEmulator({ characters: [{ slug: 'bot', allowed_origins: [ORIGIN] }] })
  t.teardown(() => emulator.close())
  return emulator
}

function postSession (emulator: OsharaEmulator, body: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${emulator.url}${SESSION_PATH}?trace=1`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: ORIGIN, 'X-Custom': 'yes' },
    body,
    ...init
  })
}

/** A POST over node:http through `agent`; resolves with the status once the body is read. */
function httpPost (emulator: OsharaEmulator, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${emulator.url}${SESSION_PATH}`, { method: 'POST', agent, headers: { origin: ORIGIN } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode as number))
    })
    req.on('error', reject)
    req.end('{"agent":"bot"}')
  })
}

t.test('records each request', async (t) => {
  const emulator = await start(t)
  const res = await postSession(emulator, '{"agent":"bot","metadata":{"a":1}}')
  t.equal(res.status, 200)
  await res.arrayBuffer()
  await fetch(`${emulator.url}/nowhere`, { method: 'PUT', body: 'not json' }).then((r) => r.arrayBuffer())

  t.equal(emulator.requests.length, 2)
  const [first, second] = emulator.requests
  t.match(first, {
    seq: 1,
    method: 'POST',
    url: `${SESSION_PATH}?trace=1`,
    headers: { origin: ORIGIN, 'x-custom': 'yes', 'content-type': 'application/json' },
    body: { agent: 'bot', metadata: { a: 1 } },
    rawBody: '{"agent":"bot","metadata":{"a":1}}',
    connection: Number,
    status: 200,
    aborted: false
  })
  t.equal(first?.fault, undefined)
  t.match(second, { seq: 2, method: 'PUT', url: '/nowhere', body: undefined, rawBody: 'not json', status: 404 })

  emulator.clearRequests()
  t.same(emulator.requests, [])
  await fetch(`${emulator.url}/x`).then((r) => r.arrayBuffer())
  t.equal(emulator.requests[0]?.seq, 3, 'seq keeps counting after clearRequests')
  t.equal(emulator.sessions.size, 1, 'sessions stay')
})

t.test('record: false keeps no requests, still answers and counts connections', async (t) => {
  const emulator = await createOsharaEmulator({ characters: [{ slug: 'bot', allowed_origins: [ORIGIN] }], record: false })
  t.teardown(() => emulator.close())
  const res = await postSession(emulator, '{"agent":"bot"}')
  t.equal(res.status, 200)
  await res.arrayBuffer()
  t.equal(emulator.requests.length, 0)
  t.equal(emulator.sessions.size, 1)
  t.ok(emulator.connectionCount >= 1)
})

t.test('keep-alive: sequential requests share a connection', async (t) => {
  const emulator = await start(t)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  for (let i = 0; i < 100; i++) {
    const status = await httpPost(emulator, agent)
    if (status !== 200) t.fail(`request ${i} answered ${status}`)
    emulator.endSession([...emulator.sessions.keys()].at(-1) as string)
  }
  t.equal(emulator.connectionCount, 1)
  t.same(new Set(emulator.requests.map((request) => request.connection)), new Set([1]))

  await fetch(`${emulator.url}/x`).then((r) => r.arrayBuffer())
  t.equal(emulator.connectionCount, 2, 'another client, another connection')
  t.equal(emulator.requests.at(-1)?.connection, 2)
})

t.test('waitForRequest', async (t) => {
  const emulator = await start(t)

  t.test('resolves with a request already recorded', async (t) => {
    await postSession(emulator, '{"agent":"bot"}').then((r) => r.arrayBuffer())
    const found = await emulator.waitForRequest((request) => request.status === 200)
    t.equal(found.seq, 1)
  })

  t.test('resolves with a request still to come', async (t) => {
    const waiting = emulator.waitForRequest((request) => request.url === '/later', 1000)
    await fetch(`${emulator.url}/later`).then((r) => r.arrayBuffer())
    t.equal((await waiting).status, 404)
  })

  t.test('rejects after the timeout', async (t) => {
    await t.rejects(emulator.waitForRequest(() => false, 20), { message: 'No matching request within 20 ms' })
  })

  t.test('resolves when a recorded request is aborted later', async (t) => {
    emulator.fault({ delayMs: 10_000 })
    const controller = new AbortController()
    const call = postSession(emulator, '{"agent":"bot"}', { signal: controller.signal })
    const pending = await emulator.waitForRequest((request) => request.fault !== undefined)
    t.equal(pending.aborted, false)
    const aborted = emulator.waitForRequest((request) => request.aborted)
    controller.abort()
    await t.rejects(call)
    t.equal(await aborted, pending)
    t.equal(pending.status, undefined)
  })
})

t.test('a request abandoned mid-body is not recorded and does no harm', async (t) => {
  const emulator = await start(t)
  const req = http.request(`${emulator.url}${SESSION_PATH}`, { method: 'POST', headers: { 'content-length': '100' } })
  req.on('error', () => {})
  req.write('{"agent":')
  await new Promise((resolve) => setTimeout(resolve, 30))
  req.destroy()
  await new Promise((resolve) => setTimeout(resolve, 30))
  t.equal(emulator.connectionCount, 1)
  t.same(emulator.requests, [])
  const res = await postSession(emulator, '{"agent":"bot"}')
  t.equal(res.status, 200)
})
