import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool, type Dispatcher } from 'undici'
import { copyWith, failure, type OsharaAbortedError, type OsharaError } from '../errors.js'
import { FAILURES } from '../failures.js'
import { type OsharaRetryMessage, retryChannel } from '../observability/channels.js'
import { VERSION } from '../version.js'
import { CircuitBreaker, type OsharaBreakerState } from './breaker.js'
import { attemptTimeout, badResponse, classifyNetworkError, classifyStatus, type ClassifyContext } from './classify.js'
import type { ClientConfig, OsharaLogger } from './options.js'
import type { Parse } from './parse.js'
import { callSecrets } from './redact.js'
import { backoffDelay, isRetryable, serverDelayMs } from './retry.js'
import type { OsharaSession } from './schemas.js'

/**
 * The client's transport: one undici pool, the call loop with its retries, deadline and circuit
 * breaker, capped body reads, and the log line of a minted session. What to call and how to read
 * the answer (an `Endpoint`) come from the client.
 */

export interface CallOptions {
  /** Aborting it ends the call, an in-flight attempt and a pending retry delay at once. */
  signal?: AbortSignal | undefined
  /** Logger for this call's retry warnings (e.g. `request.log`); defaults to the client's `logger`. */
  log?: OsharaLogger | undefined
  /** `X-Request-Id` for this call; a random UUID by default. */
  requestId?: string | undefined
}

/** What a traced call reports as it ends. */
export interface CallTrace {
  requestId: string
  attempts?: number
}

export interface Endpoint<T> {
  method: 'GET' | 'POST'
  path: string
  body: string | null
  /** GET is safe to repeat after an unknown outcome; the session POST is not. */
  idempotent: boolean
  /** For the success log line of a minted session; undefined for other calls. */
  agent: string | undefined
  context: ClassifyContext
  parse: Parse<T>
}

/** Why an attempt failed, and the delay its response asked for (if any). */
interface AttemptFailure {
  error: OsharaError
  serverDelay: number | undefined
}

const MAX_BODY_BYTES = 1024 * 1024
const CONNECT_TIMEOUT_MS = 3000
const TIMEOUT = Symbol('timeout')
const ABORTED = Symbol('aborted')

export class Transport {
  readonly baseUrl: string
  private readonly config: ClientConfig
  private readonly dispatcher: Dispatcher
  private readonly ownsDispatcher: boolean
  private readonly breaker: CircuitBreaker | undefined
  private readonly postHeaders: string[]
  private readonly getHeaders: string[]
  private closed = false
  private retries = 0

  constructor (config: ClientConfig) {
    this.config = config
    this.baseUrl = config.upstreamOrigin + config.basePath
    this.ownsDispatcher = config.dispatcher === undefined
    this.dispatcher = config.dispatcher ?? new Pool(config.upstreamOrigin, { connect: { timeout: CONNECT_TIMEOUT_MS } })
    this.breaker = config.breaker === undefined ? undefined : new CircuitBreaker(config.breaker)
    const common = ['accept', 'application/json', 'origin', config.origin, 'user-agent', `fastify-oshara-voice/${VERSION}`]
    if (config.apiKey !== undefined) common.push('x-api-key', config.apiKey)
    this.getHeaders = common
    this.postHeaders = ['content-type', 'application/json', ...common]
  }

  get breakerState (): OsharaBreakerState {
    return this.breaker?.state(Date.now()) ?? 'closed'
  }

  get retryCount (): number {
    return this.retries
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.ownsDispatcher) await this.dispatcher.close()
  }

  async call<T> (endpoint: Endpoint<T>, options: CallOptions, trace: CallTrace | undefined): Promise<T> {
    const { signal } = options
    const requestId = trace?.requestId ?? options.requestId ?? randomUUID()
    if (signal?.aborted === true) throw aborted(requestId, 0)
    if (this.closed) throw failure('FST_OSHARA_UNAVAILABLE', 'client-closed', { requestId })
    // Reads (GET) neither wait for nor count toward the breaker: a billing outage must not stop minting.
    const breaker = endpoint.idempotent ? undefined : this.breaker
    const wait = breaker?.admit(Date.now()) ?? 0
    if (wait > 0) {
      throw failure('FST_OSHARA_UNAVAILABLE', 'circuit-open', { requestId, waitMs: wait, detail: 'circuit open' })
    }
    const { retry } = this.config
    const started = Date.now()
    const deadline = started + this.config.deadlineMs
    const log = options.log ?? this.config.logger
    let attempts = 0
    let retried429 = false
    let error: OsharaError
    for (;;) {
      attempts++
      // A retry starts only when its delay ends before the deadline, so at least 1 ms is left (timer lateness aside).
      const timeoutMs = Math.max(1, Math.min(this.config.timeoutMs, deadline - Date.now()))
      const result = await this.attempt(endpoint, timeoutMs, requestId, signal)
      if (!isFailure(result)) {
        if (trace !== undefined) trace.attempts = attempts
        breaker?.recordSuccess()
        if (endpoint.agent !== undefined && log !== undefined) logCreated(log, requestId, result as OsharaSession, endpoint.agent, attempts, started)
        return result
      }
      error = result.error
      const { serverDelay } = result
      if (attempts > retry.retries || !isRetryable(error, retry, endpoint.idempotent, serverDelay, retried429)) break
      // A longer delay is not cut short: the error already carries it as retryAfterMs (its row's rule).
      if (serverDelay !== undefined && serverDelay > retry.maxRetryAfterMs) break
      const delay = serverDelay ?? backoffDelay(retry, attempts - 1)
      if (Date.now() + delay >= deadline) break
      retried429 ||= error.code === 'FST_OSHARA_UPSTREAM_LIMIT'
      this.retries++
      log?.warn({
        requestId, attempt: attempts, code: error.code, upstreamStatus: error.upstreamStatus, delayMs: delay
      }, 'oshara: retrying upstream call')
      if (retryChannel.hasSubscribers) {
        retryChannel.publish({ requestId, attempt: attempts, code: error.code, upstreamStatus: error.upstreamStatus, delayMs: delay } satisfies OsharaRetryMessage)
      }
      try {
        await sleep(delay, undefined, { signal })
      } catch {
        error = aborted(requestId, attempts)
        break
      }
    }
    if (breaker !== undefined) recordForBreaker(breaker, error)
    throw copyWith(error, { attempts, requestId })
  }

  /** One HTTP exchange, bounded by `timeoutMs` from the first byte sent to the last byte read. */
  private async attempt<T> (endpoint: Endpoint<T>, timeoutMs: number, requestId: string, signal: AbortSignal | undefined): Promise<T | AttemptFailure> {
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(TIMEOUT), timeoutMs)
    // Not AbortSignal.any: the caller's own signal may be an AbortSignal.timeout, whose reason looks like ours.
    const onCallerAbort = (): void => abort.abort(ABORTED)
    signal?.addEventListener('abort', onCallerAbort)
    let result: T | AttemptFailure
    try {
      const response = await this.dispatcher.request({
        origin: this.config.upstreamOrigin,
        path: endpoint.path,
        method: endpoint.method,
        headers: [...(endpoint.method === 'POST' ? this.postHeaders : this.getHeaders), 'x-request-id', requestId],
        body: endpoint.body,
        signal: abort.signal
      })
      const text = await readBody(response.body, response.headers['content-length'])
      result = this.outcome(endpoint, response.statusCode, response.headers, text)
    } catch (cause) {
      result = { error: thrownError(cause, abort.signal, timeoutMs, requestId, this.baseUrl), serverDelay: undefined }
    }
    clearTimeout(timer)
    signal?.removeEventListener('abort', onCallerAbort)
    return result
  }

  /** What a response means: the parsed value, or why the attempt failed. */
  private outcome<T> (endpoint: Endpoint<T>, status: number, headers: Dispatcher.ResponseData['headers'], text: string | undefined): T | AttemptFailure {
    if (status >= 200 && status < 300) {
      try {
        if (text === undefined) throw badResponse('body over 1 MiB', status)
        return endpoint.parse(text, status)
      } catch (error) {
        return { error: error as OsharaError, serverDelay: undefined }
      }
    }
    const serverDelay = serverDelayMs(headers, Date.now())
    const secrets = callSecrets(this.config.apiKey, endpoint.body)
    return { error: classifyStatus(status, text ?? '', serverDelay, endpoint.context, secrets), serverDelay }
  }
}

/** What a thrown attempt means: our timeout, the caller's abort, or a network failure. */
function thrownError (cause: unknown, signal: AbortSignal, timeoutMs: number, requestId: string, baseUrl: string): OsharaError {
  if (!signal.aborted) return classifyNetworkError(cause, baseUrl)
  return signal.reason === TIMEOUT ? attemptTimeout(timeoutMs) : aborted(requestId, 0)
}

function recordForBreaker (breaker: CircuitBreaker, error: OsharaError): void {
  const count = FAILURES[error.code].breaker
  if (count === 'failure') breaker.recordFailure(Date.now())
  else if (count === 'neutral') breaker.recordNeutral()
  else breaker.recordSuccess()
}

/** The success line of a minted session: one pino line, as a hand-written route would log. */
function logCreated (log: OsharaLogger, requestId: string, session: OsharaSession, agent: string, attempts: number, started: number): void {
  log.info({ requestId, session_id: session.session_id, agent, attempts, durationMs: Date.now() - started }, 'oshara: session created')
}

function isFailure<T> (result: T | AttemptFailure): result is AttemptFailure {
  return (result as AttemptFailure).error instanceof Error
}

function aborted (requestId: string, attempts: number): OsharaAbortedError {
  return failure('FST_OSHARA_ABORTED', 'during-call', { requestId, attempts })
}

/** Reads the whole body as text, or undefined when it is over 1 MiB (the rest is not read). */
function readBody (body: Dispatcher.ResponseData['body'], contentLength: string | string[] | undefined): Promise<string | undefined> {
  const declared = Number(contentLength)
  if (declared > MAX_BODY_BYTES) {
    body.destroy()
    return Promise.resolve(undefined)
  }
  // A declared length within the cap is enforced by undici itself: read it in one go.
  return declared >= 0 ? body.text() : readCapped(body)
}

/** A body of no declared length, read chunk by chunk up to the cap. */
async function readCapped (body: Dispatcher.ResponseData['body']): Promise<string | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY_BYTES) {
      body.destroy()
      return undefined
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, size).toString('utf8')
}
