import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { EmulatorFault, EmulatorOptions, OsharaEmulator, RecordedRequest } from './types.js'
import { FaultQueue, faultReply } from './faults.js'
import { RequestLog } from './recorder.js'
import { jsonReply, readBody, sendReply, waitUnlessClosed, type Reply } from './reply.js'
import { SessionBook } from './sessions.js'
import { sessionBodyError, type SessionBody } from './validate.js'

const SESSION_PATHS = new Set(['/api/agents/agent-session/', '/api/agents/agent-session'])
const BILLING_PATH = /^\/api\/billing\/sessions\/([^/]+)\/?$/

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function billingError (status: number, message: string): Reply {
  return jsonReply(status, { success: false, message, data: null, errors: { detail: message } })
}

function listen (server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/** Starts a local Oshara on `host:port` (default 127.0.0.1, a free port). */
export async function createOsharaEmulator (options: EmulatorOptions): Promise<OsharaEmulator> {
  const apiKeys = new Set(options.apiKeys ?? [])
  const book = new SessionBook(options)
  const faults = new FaultQueue()
  const log = new RequestLog()
  const connectionIds = new WeakMap<Socket, number>()
  // Sockets the emulator destroyed itself (a `reset` fault): those requests are not "aborted".
  const resetSockets = new WeakSet<Socket>()
  let connectionCount = 0
  let seq = 0

  const server = createServer(handle)
  server.keepAliveTimeout = 5000
  server.on('connection', (socket: Socket) => connectionIds.set(socket, ++connectionCount))

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawBody = await readBody(req)
    const path = (req.url as string).replace(/\?.*$/s, '')
    const isSessionRequest = req.method === 'POST' && SESSION_PATHS.has(path)
    const fault = isSessionRequest ? faults.next() : undefined
    const record = recordRequest(req, rawBody, fault)
    res.on('finish', () => {
      record.status = res.statusCode
      log.changed()
    })
    res.on('close', () => {
      if (res.writableFinished || resetSockets.has(req.socket)) return
      record.aborted = true
      log.changed()
    })
    if (!isSessionRequest) return sendReply(res, otherReply(req, path))
    if (fault === undefined) return sendReply(res, sessionReply(req, record.body))
    await answerWithFault(req, res, record.body, fault)
  }

  function recordRequest (req: IncomingMessage, rawBody: string, fault: EmulatorFault | undefined): RecordedRequest {
    const record: RecordedRequest = {
      seq: ++seq,
      method: req.method as string,
      url: req.url as string,
      headers: { ...req.headers },
      body: parseJson(rawBody),
      rawBody,
      connection: connectionIds.get(req.socket) as number,
      aborted: false,
      fault
    }
    if (options.record !== false) log.add(record)
    return record
  }

  async function answerWithFault (req: IncomingMessage, res: ServerResponse, body: unknown, fault: EmulatorFault): Promise<void> {
    if (fault.delayMs !== undefined && !(await waitUnlessClosed(res, fault.delayMs))) return
    if (fault.reset === true) {
      resetSockets.add(req.socket)
      req.socket.destroy()
      return
    }
    await sendReply(res, faultReply(fault) ?? sessionReply(req, body), fault.slowBodyMs)
  }

  function sessionReply (req: IncomingMessage, body: unknown): Reply {
    const keyError = apiKeyError(req.headers['x-api-key'] as string | undefined)
    if (keyError !== undefined) return jsonReply(401, { detail: keyError })
    const bodyError = sessionBodyError(body)
    if (bodyError !== undefined) return jsonReply(400, { detail: bodyError })
    return book.create(body as SessionBody, req.headers.origin)
  }

  function apiKeyError (key: string | undefined): string | undefined {
    if (key === undefined) return options.requireApiKey === true ? 'Authentication credentials were not provided.' : undefined
    return apiKeys.has(key) ? undefined : 'Invalid API key.'
  }

  function otherReply (req: IncomingMessage, path: string): Reply {
    const billing = BILLING_PATH.exec(path)
    if (req.method !== 'GET' || billing === null) return jsonReply(404, { detail: 'Not found.' })
    if (!apiKeys.has(req.headers['x-api-key'] as string)) return billingError(401, 'Invalid API key.')
    const summary = book.summary(billing[1] as string)
    if (summary === undefined) return billingError(404, 'Session not found.')
    return jsonReply(200, { success: true, message: 'OK', data: summary, errors: null })
  }

  const host = options.host ?? '127.0.0.1'
  await listen(server, options.port ?? 0, host)
  const { port } = server.address() as { port: number }

  return {
    url: `http://${host}:${port}`,
    port,
    get requests () { return log.requests },
    get connectionCount () { return connectionCount },
    sessions: book.sessions,
    activeSessions: (slug) => book.activeCount(slug),
    fault: (fault, times = 1) => faults.add(fault, times),
    clearFaults: () => faults.clear(),
    endSession: (sessionId) => book.end(sessionId),
    clearRequests: () => log.clear(),
    waitForRequest: (predicate, timeoutMs = 2000) => log.waitFor(predicate, timeoutMs),
    close: () => new Promise((resolve) => {
      // Resolves even when already closed (the callback then gets ERR_SERVER_NOT_RUNNING).
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
}
