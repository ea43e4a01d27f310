import t, { type Test } from 'tap'
import http from 'node:http'
import { createOsharaEmulator, type OsharaEmulator } from '../lib/emulator.js'

const ORIGIN = 'https://app.example.com'
const SESSION_URL = '/api/agents/agent-session/'

async function start (t: Test): Promise<OsharaEmulator> {
  const emulator = await createOsharaEmulator({ characters: [{ slug: 'bot', allowed_origins: [ORIGIN] }] })
  t.teardown(() => emulator.close())
  return emulator
}

function postSession (emulator: OsharaEmulator, init: RequestInit = {}): Promise<Response> {
  return fetch(emulator.url + SESSION_URL, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: ORIGIN },
    body: '{"agent":"bot"}',
    ...init
  })
}

async function status (emulator: OsharaEmulator): Promise<number> {
  const res = await postSession(emulator)
  await res.arrayBuffer()
  return res.status
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

t.test('delayMs answers normally, later', async (t) => {
  const emulator = await start(t)
  const fault = { delayMs: 100 }
  emulator.fault(fault)
  const started = Date.now()
  const res = await postSession(emulator)
  t.ok(Date.now() - started >= 90, 'waited')
  t.equal(res.status, 200)
  t.match(await res.json(), { session_id: /^sess_/ })
  t.equal(emulator.requests[0]?.fault, fault)
})

t.test('delayMs: a client that leaves is recorded as aborted and not answered', async (t) => {
  const emulator = await start(t)
  // A delay far longer than the test: the client always leaves first, however loaded the machine.
  emulator.fault({ delayMs: 60_000 })
  const controller = new AbortController()
  const call = postSession(emulator, { signal: controller.signal })
  await emulator.waitForRequest(() => true)
  controller.abort()
  await t.rejects(call)
  const request = await emulator.waitForRequest((request) => request.aborted)
  t.equal(request.status, undefined)
  t.equal(emulator.sessions.size, 0, 'no session minted')
})

t.test('reset destroys the connection without answering', async (t) => {
  const emulator = await start(t)
  emulator.fault({ reset: true })
  emulator.fault({ reset: true, delayMs: 20 })
  await t.rejects(postSession(emulator))
  await t.rejects(postSession(emulator))
  await sleep(20)
  t.match(emulator.requests, [
    { fault: { reset: true }, aborted: false, status: undefined },
    { fault: { reset: true, delayMs: 20 }, aborted: false, status: undefined }
  ])
  t.equal(emulator.sessions.size, 0)
  t.equal(await status(emulator), 200, 'the next request is served')
})

t.test('status answers as told', async (t) => {
  const emulator = await start(t)

  t.test('default body, extra headers', async (t) => {
    emulator.fault({ status: 429, headers: { 'retry-after': '2' } })
    const res = await postSession(emulator)
    t.equal(res.status, 429)
    t.equal(res.headers.get('retry-after'), '2')
    t.equal(res.headers.get('content-type'), 'application/json')
    t.same(await res.json(), { detail: 'Injected fault' })
    t.equal(emulator.sessions.size, 0, 'no session minted')
  })

  t.test('object body', async (t) => {
    emulator.fault({ status: 503, body: { error: 'maintenance' } })
    const res = await postSession(emulator)
    t.equal(res.status, 503)
    t.same(await res.json(), { error: 'maintenance' })
  })

  t.test('string body', async (t) => {
    emulator.fault({ status: 502, body: '<html>Bad gateway</html>', headers: { 'content-type': 'text/html' } })
    const res = await postSession(emulator)
    t.equal(res.status, 502)
    t.equal(res.headers.get('content-type'), 'text/html')
    t.equal(await res.text(), '<html>Bad gateway</html>')

    emulator.fault({ status: 500, body: 'oops' })
    const plain = await postSession(emulator)
    t.equal(plain.headers.get('content-type'), 'text/plain; charset=utf-8')
    t.equal(await plain.text(), 'oops')
  })

  t.test('a 204 or 304 fault carries no body and no content headers (the connection stays usable)', async (t) => {
    for (const code of [204, 304]) {
      emulator.fault({ status: code, headers: { 'x-fault': 'yes' } })
      const res = await postSession(emulator)
      t.equal(res.status, code)
      t.equal(res.headers.get('content-length'), null, `${code}: no content-length`)
      t.equal(res.headers.get('content-type'), null, `${code}: no content-type`)
      t.equal(res.headers.get('x-fault'), 'yes', `${code}: the fault's own headers`)
      t.equal(await res.text(), '')
      t.equal(await status(emulator), 200, `${code}: the next request is answered`)
    }
  })

  t.test('status wins over the later faults', async (t) => {
    emulator.fault({ status: 500, malformed: true, oversizedBytes: 100 })
    const res = await postSession(emulator)
    t.equal(res.status, 500)
    t.same(await res.json(), { detail: 'Injected fault' })
  })
})

t.test('malformed answers 200 with truncated JSON', async (t) => {
  const emulator = await start(t)
  emulator.fault({ malformed: true })
  const res = await postSession(emulator)
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'application/json')
  t.equal(await res.text(), '{"token": ')
})

t.test('oversizedBytes answers 200 with that much JSON', async (t) => {
  const emulator = await start(t)
  emulator.fault({ oversizedBytes: 2_000_000 })
  emulator.fault({ oversizedBytes: 3 })
  const big = await postSession(emulator)
  t.equal(big.status, 200)
  t.equal(big.headers.get('content-length'), '2000000')
  const text = await big.text()
  t.equal(text.length, 2_000_000)
  t.match(JSON.parse(text), { padding: /^x+$/ })
  t.equal(await (await postSession(emulator)).text(), '{"padding":""}', 'never less than valid JSON')
})

t.test('slowBodyMs sends half the answer, waits, then the rest', async (t) => {
  const emulator = await start(t)

  t.test('the whole answer arrives', async (t) => {
    emulator.fault({ slowBodyMs: 100 })
    const started = Date.now()
    const res = await postSession(emulator)
    t.equal(res.status, 200)
    const length = Number(res.headers.get('content-length'))
    const body = await res.text()
    t.ok(Date.now() - started >= 90, 'waited')
    t.equal(Buffer.byteLength(body), length)
    t.match(JSON.parse(body), { session_id: /^sess_/ })
  })

  t.test('combines with status', async (t) => {
    emulator.fault({ status: 503, slowBodyMs: 20 })
    const res = await postSession(emulator)
    t.equal(res.status, 503)
    t.same(await res.json(), { detail: 'Injected fault' })
  })

  t.test('a client that leaves mid-body is recorded as aborted', async (t) => {
    emulator.clearRequests()
    emulator.fault({ slowBodyMs: 10_000 })
    const firstHalf = await new Promise<string>((resolve, reject) => {
      const req = http.request(emulator.url + SESSION_URL, { method: 'POST', headers: { origin: ORIGIN } }, (res) => {
        res.once('data', (chunk: Buffer) => {
          req.destroy()
          resolve(chunk.toString())
        })
      })
      req.on('error', reject)
      req.end('{"agent":"bot"}')
    })
    t.match(firstHalf, /^{"token":/)
    const request = await emulator.waitForRequest((request) => request.aborted)
    t.equal(request.status, undefined)
  })
})

t.test('the fault queue', async (t) => {
  const emulator = await start(t)

  t.test('applies a fault `times` times, in order', async (t) => {
    emulator.fault({ status: 503 }, 2)
    emulator.fault({ status: 500 })
    const statuses = [await status(emulator), await status(emulator), await status(emulator), await status(emulator)]
    t.same(statuses, [503, 503, 500, 200])
  })

  t.test('times 0 queues nothing', async (t) => {
    emulator.fault({ status: 503 }, 0)
    t.equal(await status(emulator), 200)
  })

  t.test('clearFaults', async (t) => {
    emulator.fault({ status: 503 }, 3)
    emulator.clearFaults()
    t.equal(await status(emulator), 200)
  })

  t.test('only session requests take faults', async (t) => {
    emulator.fault({ status: 503 })
    const other = await fetch(`${emulator.url}/api/billing/sessions/sess_x/`)
    await other.arrayBuffer()
    t.equal(other.status, 401)
    t.equal(emulator.requests.at(-1)?.fault, undefined)
    t.equal(await status(emulator), 503)
  })
})

t.test('close() is prompt while faults are pending', async (t) => {
  const emulator = await createOsharaEmulator({ characters: [{ slug: 'bot', allowed_origins: [ORIGIN] }] })
  emulator.fault({ delayMs: 60_000 })
  emulator.fault({ slowBodyMs: 60_000 })
  const delayed = postSession(emulator)
  const slow = postSession(emulator).then((res) => res.text())
  await emulator.waitForRequest((request) => request.seq === 2)
  await sleep(20)
  const bothFail = Promise.all([t.rejects(delayed), t.rejects(slow)])
  const started = Date.now()
  await emulator.close()
  t.ok(Date.now() - started < 1000, 'closed at once')
  await bothFail
})
