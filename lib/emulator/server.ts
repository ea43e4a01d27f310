import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { EmulatorFault, EmulatorFaultTarget, EmulatorOptions, OsharaEmulator, RecordedRequest } from './emulator-types.js'
import { Billing, keyScopes } from './billing.js'
import { FaultQueue, faultReply } from './faults.js'
import { RequestLog } from './recorder.js'
import { jsonReply, readBody, sendReply, waitUnlessClosed, type Reply } from './reply.js'
import { SessionBook } from './sessions.js'
import { sessionBodyError, type SessionBody } from './session-body.js'
import { callTool } from './tools.js'

const NOT_FOUND = jsonReply(404, { detail: 'Not found.' })
const FORM_RESPONSES_PATH = /^\/api\/agents\/([^/]+)\/form-responses\/?$/

/** A request as a route sees it: `param` is the path's one parameter ('' when it has none). */
interface Call {
  req: IncomingMessage
  param: string
  query: URLSearchParams
  body: unknown
  rawBody: string
}

interface Route {
  method: string
  pattern: RegExp
  /** The faults it takes; none when unset. */
  target?: EmulatorFaultTarget
  answer: (call: Call) => Reply
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
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
  const scopes = keyScopes(options.apiKeys ?? [])
  const book = new SessionBook(options)
  const billing = new Billing(book, scopes)
  const faults = new FaultQueue()
  const log = new RequestLog()
  const connectionIds = new WeakMap<Socket, number>()
  // Sockets the emulator destroyed itself (a `reset` fault): those requests are not "aborted".
  const resetSockets = new WeakSet<Socket>()
  let connectionCount = 0
  let seq = 0
  let url = ''

  const server = createServer(handle)
  server.keepAliveTimeout = 5000
  server.on('connection', (socket: Socket) => connectionIds.set(socket, ++connectionCount))

  const apiKey = (req: IncomingMessage): string | undefined => req.headers['x-api-key'] as string | undefined
  const routes: Route[] = [
    { method: 'POST', pattern: /^\/api\/agents\/agent-session\/?$/, target: 'session', answer: ({ req, body }) => sessionReply(req, body) },
    { method: 'GET', pattern: /^\/api\/billing\/sessions\/([^/]+)\/?$/, target: 'billing', answer: ({ req, param }) => billing.summary(apiKey(req), param) },
    { method: 'GET', pattern: /^\/api\/billing\/usage\/?$/, target: 'usage', answer: ({ req, query }) => billing.usage(apiKey(req), query) },
    {
      method: 'GET',
      pattern: FORM_RESPONSES_PATH,
      target: 'form-responses',
      answer: ({ req, param, query }) => billing.formResponses(apiKey(req), param, query)
    },
    { method: 'GET', pattern: /^\/api\/agents\/([^/]+)\/appearance\/?$/, target: 'appearance', answer: ({ req, param }) => book.appearance(param, req.headers.origin) },
    { method: 'POST', pattern: FORM_RESPONSES_PATH, answer: ({ req, param, body }) => billing.addFormResponse(apiKey(req), param, body) },
    // Control endpoint, without auth (the emulator is local): ends a call like `endSession`.
    { method: 'POST', pattern: /^\/_emulator\/sessions\/([^/]+)\/end\/?$/, answer: ({ param, body, rawBody }) => book.endReply(param, rawBody === '' ? {} : body) }
  ]

  function match (method: string, path: string): { route: Route, param: string } | undefined {
    for (const route of routes) {
      const found = route.method === method ? route.pattern.exec(path) : null
      if (found !== null) return { route, param: found[1] ?? '' }
    }
    return undefined
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawBody = await readBody(req)
    const path = (req.url as string).replace(/\?.*$/s, '')
    const query = new URLSearchParams((req.url as string).slice(path.length + 1))
    const matched = match(req.method as string, path)
    const target = matched?.route.target
    const fault = target === undefined ? undefined : faults.next(target)
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
    const answer = (): Reply => matched === undefined
      ? NOT_FOUND
      : matched.route.answer({ req, param: matched.param, query, body: record.body, rawBody })
    if (fault === undefined) return sendReply(res, answer())
    await answerWithFault(req, res, fault, answer)
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

  async function answerWithFault (req: IncomingMessage, res: ServerResponse, fault: EmulatorFault, answer: () => Reply): Promise<void> {
    if (fault.delayMs !== undefined && !(await waitUnlessClosed(res, fault.delayMs))) return
    if (fault.reset === true) {
      resetSockets.add(req.socket)
      req.socket.destroy()
      return
    }
    await sendReply(res, faultReply(fault) ?? answer(), fault.slowBodyMs)
  }

  function sessionReply (req: IncomingMessage, body: unknown): Reply {
    const keyError = apiKeyError(apiKey(req))
    if (keyError !== undefined) return jsonReply(401, { detail: keyError })
    const bodyError = sessionBodyError(body)
    if (bodyError !== undefined) return jsonReply(400, { detail: bodyError })
    return book.create(body as SessionBody, req.headers.origin)
  }

  function apiKeyError (key: string | undefined): string | undefined {
    if (key === undefined) return options.requireApiKey === true ? 'Authentication credentials were not provided.' : undefined
    return scopes.has(key) ? undefined : 'Invalid API key.'
  }

  const host = options.host ?? '127.0.0.1'
  await listen(server, options.port ?? 0, host)
  const { port } = server.address() as { port: number }
  // An IPv6 address is bracketed in a URL (`http://[::1]:port`).
  url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`

  return {
    url,
    port,
    get requests () { return log.requests },
    get connectionCount () { return connectionCount },
    sessions: book.sessions,
    activeSessions: (slug) => book.activeCount(slug),
    fault: (fault, times = 1) => faults.add(fault, times),
    clearFaults: () => faults.clear(),
    endSession: (sessionId, endOptions) => book.end(sessionId, endOptions),
    clearRequests: () => log.clear(),
    waitForRequest: (predicate, timeoutMs = 2000) => log.waitFor(predicate, timeoutMs),
    callTool: (sessionId, call) => callTool(book.sessions.get(sessionId), sessionId, call),
    close: () => new Promise((resolve) => {
      // Resolves even when already closed (the callback then gets ERR_SERVER_NOT_RUNNING).
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
}
