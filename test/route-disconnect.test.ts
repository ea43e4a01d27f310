import { connect, type Socket } from 'node:net'
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { createOsharaClient } from '../lib/client/client.js'
import { disconnectSignal } from '../lib/route/disconnect.js'
import { MemorySessionStore, type OsharaClient, type OsharaError } from '../lib/index.js'
import type { SessionStore } from '../lib/stores.js'
import { buildApp, postToken } from './helpers/app.js'
import { ORIGIN, sessionRequests, startEmulator } from './helpers/emulator.js'
import { waitUntil } from './helpers/wait.js'

// A browser that leaves before the upstream call: seen from the moment the request arrives.

for (const slowStep of ['auth preHandler', 'metadata extractor']) {
  t.test(`a browser that leaves during a slow ${slowStep} starts no upstream call and holds no slot`, async (t) => {
    const emulator = await startEmulator(t)
    let entered!: () => void
    const enteredSlowStep = new Promise<void>((resolve) => { entered = resolve })
    let observe!: (error: OsharaError) => void
    const observed = new Promise<OsharaError>((resolve) => { observe = resolve })
    /** For a request marked slow: holds it until the browser's connection has closed. */
    const slow = async (request: FastifyRequest): Promise<void> => {
      if (request.headers['x-slow'] === undefined) return
      const socket = request.raw.socket
      const closed = new Promise((resolve) => socket.once('close', resolve))
      entered()
      if (!socket.destroyed) await closed
    }
    const app = await buildApp(t, emulator, {
      limits: { concurrency: 1, key: () => 'user-1' },
      onSessionError: (_request, error) => { observe(error as OsharaError) },
      ...(slowStep === 'auth preHandler'
        ? { routeOptions: { preHandler: slow } }
        : { public: true, metadata: async (request) => { await slow(request); return { user_id: 'u1' } } })
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as { port: number }
    const socket = connect(port, '127.0.0.1')
    socket.on('error', () => {})
    socket.write(`POST /voice-token HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Slow: 1\r\nContent-Length: 0\r\n\r\n`)
    await enteredSlowStep
    socket.destroy()

    const error = await observed
    t.equal(error.code, 'FST_OSHARA_ABORTED', 'onSessionError sees the abort')
    t.equal(sessionRequests(emulator).length, 0, 'no upstream call started')
    const next = await postToken(app)
    t.equal(next.statusCode, 200, 'the same user gets a session at once: the slot is free')
  })
}

t.test('the disconnect signal tells every listener, and a removed listener nothing (it once kept only the last listener)', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const heard: string[] = []
  let arrived!: () => void
  const requestArrived = new Promise<void>((resolve) => { arrived = resolve })
  let aborted!: () => void
  const signalAborted = new Promise<void>((resolve) => { aborted = resolve })
  app.get('/slow', async (_request, reply) => {
    const signal = disconnectSignal(reply)
    const removed = (): void => { heard.push('removed') }
    signal.addEventListener('abort', () => { heard.push('first') })
    signal.addEventListener('abort', removed)
    signal.addEventListener('abort', () => { heard.push('second'); aborted() })
    signal.removeEventListener('abort', removed)
    arrived()
    await signalAborted
    return 'late'
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`GET /slow HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
  await requestArrived
  socket.destroy()
  await signalAborted
  t.same(heard, ['first', 'second'])
})

t.test('a reply whose connection is already gone starts aborted', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  let aborted: boolean | undefined
  let arrived!: () => void
  const requestArrived = new Promise<void>((resolve) => { arrived = resolve })
  app.get('/gone', async (request, reply) => {
    const socket = request.raw.socket
    if (!socket.destroyed) await new Promise((resolve) => socket.once('close', resolve))
    aborted = disconnectSignal(reply).aborted
    arrived()
    return 'late'
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`GET /gone HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, () => { setImmediate(() => socket.destroy()) })
  await requestArrived
  t.equal(aborted, true)
})

t.test('a listener of the disconnect signal is not called when the connection closes after the reply', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  let heard = 0
  let closed!: () => void
  const connectionClosed = new Promise<void>((resolve) => { closed = resolve })
  app.get('/quick', async (_request, reply) => {
    disconnectSignal(reply).addEventListener('abort', () => { heard++ })
    reply.raw.once('close', () => { closed() })
    return 'done'
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const response = await fetch(`http://127.0.0.1:${port}/quick`)
  t.equal(await response.text(), 'done')
  await connectionClosed
  t.equal(heard, 0)
})

/** An `OsharaClient` of the app's own, over the plugin's: it records the signal each mint is given. */
function recordingClient (real: OsharaClient, signals: Array<AbortSignal | undefined>, abortedAtCall: boolean[] = []): OsharaClient {
  return {
    origin: real.origin,
    baseUrl: real.baseUrl,
    hasApiKey: real.hasApiKey,
    get breakerState () { return real.breakerState },
    get retryCount () { return real.retryCount },
    createSession: (body, options) => {
      signals.push(options?.signal)
      abortedAtCall.push(options?.signal?.aborted === true)
      return real.createSession(body, options)
    },
    getSession: (id, options) => real.getSession(id, options),
    listSessions: (filters, options) => real.listSessions(filters, options),
    listFormResponses: (slug, filters, options) => real.listFormResponses(slug, filters, options),
    getAppearance: (slug, options) => real.getAppearance(slug, options),
    close: () => real.close()
  }
}

/** Sends a token request on a raw socket, so that the test can close it mid-request. */
async function openTokenRequest (app: FastifyInstance): Promise<Socket> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`POST /voice-token HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 0\r\n\r\n`)
  return socket
}

t.test('a client of the app\'s own gets a standard AbortSignal, aborted when the browser leaves during the upstream call', async (t) => {
  const emulator = await startEmulator(t)
  const real = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url })
  t.teardown(() => real.close())
  const signals: Array<AbortSignal | undefined> = []
  emulator.fault({ delayMs: 5000 })
  const app = await buildApp(t, emulator, { baseUrl: undefined, origin: undefined, retry: undefined, client: recordingClient(real, signals), public: true })
  const socket = await openTokenRequest(app)
  await emulator.waitForRequest(() => true)
  const signal = signals[0] as AbortSignal
  t.ok(signal instanceof AbortSignal, 'a standard AbortSignal')
  t.equal(signal.aborted, false, 'not aborted while the browser waits')
  socket.destroy()
  await waitUntil(() => signal.aborted, 'the signal aborts when the browser leaves')
  const seen = await emulator.waitForRequest((request) => request.aborted)
  t.equal(seen.status, undefined, 'the upstream call was abandoned')
})

t.test('a client of the app\'s own gets an aborted AbortSignal when the browser left while its slot was taken', async (t) => {
  const emulator = await startEmulator(t)
  const real = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url })
  t.teardown(() => real.close())
  const signals: Array<AbortSignal | undefined> = []
  const abortedAtCall: boolean[] = []
  const browser: { socket?: Socket, seenGone?: Promise<void> } = {}
  const memory = new MemorySessionStore()
  /** The slot is granted only once the server has seen the browser's connection close. */
  const store: SessionStore = {
    acquire: async (request) => {
      (browser.socket as Socket).destroy()
      await browser.seenGone
      return await memory.acquire(request)
    },
    bind: (slotId, sessionId, holdMs) => memory.bind(slotId, sessionId, holdMs),
    release: (slotId) => memory.release(slotId),
    releaseSession: (sessionId, key) => memory.releaseSession(sessionId, key)
  }
  const app = await buildApp(t, emulator, {
    baseUrl: undefined,
    origin: undefined,
    retry: undefined,
    client: recordingClient(real, signals, abortedAtCall),
    public: true,
    limits: { concurrency: 1, key: () => 'user-1', store }
  })
  browser.seenGone = new Promise<void>((resolve) => app.server.once('connection', (connection: Socket) => connection.once('close', () => resolve())))
  browser.socket = await openTokenRequest(app)
  await waitUntil(() => signals.length === 1, 'the client was called')
  t.equal(abortedAtCall[0], true, 'its signal is aborted when the client is called')
  t.equal(sessionRequests(emulator).length, 0, 'no upstream call started')
  await waitUntil(() => memory.size === 0, 'the slot is freed')
})

t.test('the decorator hands a client of the app\'s own the caller\'s own AbortSignal, or none', async (t) => {
  const emulator = await startEmulator(t)
  const real = createOsharaClient({ origin: ORIGIN, baseUrl: emulator.url })
  t.teardown(() => real.close())
  const signals: Array<AbortSignal | undefined> = []
  const app = await buildApp(t, emulator, { baseUrl: undefined, origin: undefined, retry: undefined, client: recordingClient(real, signals), public: true })
  const signal = AbortSignal.timeout(60_000)
  await app.oshara.createSession({ agent: 'support-bot' }, { signal })
  await app.oshara.createSession({ agent: 'support-bot' })
  t.equal(signals[0], signal, 'the same signal')
  t.equal(signals[1], undefined, 'no signal')
})
