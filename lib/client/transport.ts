import { randomUUID } from 'node:crypto'
import { Pool, type Dispatcher } from 'undici'
import { copyWith, failure, type OsharaAbortedError, type OsharaError } from '../errors.js'
import { FAILURES } from '../failures.js'
import { type OsharaRetryMessage, retryChannel } from '../observability/channels.js'
import { VERSION } from '../version.js'
import { CircuitBreaker, type OsharaBreakerState } from './breaker.js'
import { type Answer, Exchange } from './exchange.js'
import { attemptTimeout, badResponse, classifyNetworkError, classifyStatus, type ClassifyContext } from './classify.js'
import type { ClientConfig, OsharaLogger } from './options.js'
import type { Parse } from './parse.js'
import { callSecrets } from './redact.js'
import { backoffDelay, isRetryable, serverDelayMs } from './retry.js'
import type { OsharaSession } from './schemas.js'

/**
 * The client's transport: one undici pool, the call loop with its retries, deadline and circuit
 * breaker, and the log line of a minted session; each attempt is one `Exchange` (capped body
 * read). What to call and how to read the answer (an `Endpoint`) come from the client.
 */

export interface CallOptions {
  /** Aborting it ends the call, an in-flight attempt and a pending retry delay at once. */
  signal?: AbortSignal | undefined
  /** Logger for this call's retry warnings (e.g. `request.log`); defaults to the client's `logger`. */
  log?: OsharaLogger | undefined
  /** `X-Request-Id` for this call; a random UUID by default. */
  requestId?: string | undefined
}

/**
 * What ends a call early: any `AbortSignal`, or the route's watch on the browser's response
 * (`route/disconnect.ts`). Its 'abort' listeners are called once, when it aborts.
 */
export interface CallerSignal {
  readonly aborted: boolean
  addEventListener: (type: 'abort', listener: () => void) => void
  removeEventListener: (type: 'abort', listener: () => void) => void
}

/** The transport's call options: the caller's signal may be any `CallerSignal`. */
export interface TransportCallOptions extends Omit<CallOptions, 'signal'> {
  signal?: CallerSignal | undefined
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
// The reasons an exchange is stopped with, told apart by identity; never seen outside the transport.
const TIMED_OUT = new Error('attempt timed out')
const CALLER_ABORTED = new Error('caller aborted')

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

  async call<T> (endpoint: Endpoint<T>, options: TransportCallOptions, trace: CallTrace | undefined): Promise<T> {
    const { signal } = options
    const requestId = trace?.requestId ?? options.requestId ?? randomUUID()
    if (signal?.aborted === true) throw failure('FST_OSHARA_ABORTED', 'not-sent', { requestId })
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
    // The call's outcome: once an attempt may have created a session, a later 'not_created' failure does not undo it.
    let mayHaveCreated = false
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
      mayHaveCreated ||= error.outcome === 'unknown'
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
      if (await pause(delay, signal)) {
        error = aborted('not-sent')
        break
      }
    }
    if (breaker !== undefined) recordForBreaker(breaker, error)
    throw copyWith(error, { attempts, requestId, outcome: mayHaveCreated ? 'unknown' : error.outcome })
  }

  /** One HTTP exchange, bounded by `timeoutMs` from the first byte sent to the last byte read. */
  private async attempt<T> (endpoint: Endpoint<T>, timeoutMs: number, requestId: string, signal: CallerSignal | undefined): Promise<T | AttemptFailure> {
    const exchange = new Exchange(MAX_BODY_BYTES)
    const timer = setTimeout(() => exchange.stop(TIMED_OUT), timeoutMs)
    const onCallerAbort = (): void => { exchange.stop(CALLER_ABORTED) }
    signal?.addEventListener('abort', onCallerAbort)
    exchange.start(this.dispatcher, {
      origin: this.config.upstreamOrigin,
      path: endpoint.path,
      method: endpoint.method,
      headers: [...(endpoint.method === 'POST' ? this.postHeaders : this.getHeaders), 'x-request-id', requestId],
      body: endpoint.body
    })
    const answer = await exchange.done
    clearTimeout(timer)
    signal?.removeEventListener('abort', onCallerAbort)
    if ('error' in answer) return { error: thrownError(answer.error, timeoutMs, exchange.requestStarted, this.baseUrl), serverDelay: undefined }
    return this.outcome(endpoint, answer)
  }

  /** What a response means: the parsed value, or why the attempt failed. */
  private outcome<T> (endpoint: Endpoint<T>, { status, headers, text }: Answer): T | AttemptFailure {
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

/** Why an attempt has no answer: our timeout, the caller's abort, or a network failure. */
function thrownError (cause: Error, timeoutMs: number, requestStarted: boolean, baseUrl: string): OsharaError {
  if (cause === TIMED_OUT) return attemptTimeout(timeoutMs, requestStarted)
  return cause === CALLER_ABORTED ? aborted(requestStarted ? 'during-call' : 'not-sent') : classifyNetworkError(cause, baseUrl)
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

/** Waits `ms` before a retry; resolves to true, early, when the caller goes away. */
function pause (ms: number, signal: CallerSignal | undefined): Promise<boolean> {
  if (signal === undefined) return new Promise((resolve) => setTimeout(resolve, ms, false))
  if (signal.aborted) return Promise.resolve(true)
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      resolve(true)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(false)
    }, ms)
    signal.addEventListener('abort', onAbort)
  })
}

/** The caller's abort; `copyWith` at the end of the call sets its attempts, request id and the call's outcome. */
function aborted (situation: 'not-sent' | 'during-call'): OsharaAbortedError {
  return failure('FST_OSHARA_ABORTED', situation)
}
