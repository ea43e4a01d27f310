import { connect } from 'node:net'
import t from 'tap'
import Fastify, { type FastifyRequest } from 'fastify'
import { disconnectSignal } from '../lib/route/disconnect.js'
import type { OsharaError } from '../lib/index.js'
import { buildApp, postToken } from './helpers/app.js'
import { sessionRequests, startEmulator } from './helpers/emulator.js'

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
