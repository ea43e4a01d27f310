import type { IncomingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'

/** An answer read whole; `text` is undefined when the body is over the cap (the rest is not read). */
export interface Answer {
  status: number
  headers: IncomingHttpHeaders
  text: string | undefined
}

/** No answer: a network failure, or the reason given to `stop`. */
export interface NoAnswer {
  error: Error
}

/**
 * One HTTP exchange over undici's dispatch API: the answer's status, headers and body text,
 * collected from the handler's callbacks. `request()` would make a body stream and listen to an
 * `AbortSignal` for each exchange; this reads the few chunks of a JSON answer directly, and is
 * ended by `stop` (the attempt's deadline, or the caller going away).
 */
export class Exchange implements Dispatcher.DispatchHandler {
  /** Settles once: with the answer, or with why there is none. */
  readonly done: Promise<Answer | NoAnswer>
  /**
   * undici began writing the request on a connected socket (`onRequestStart`): from here it may
   * reach Oshara. False while the request waits for a connection (connecting, or queued behind a
   * busy one), and for one stopped before it got there.
   */
  requestStarted = false
  private settle!: (outcome: Answer | NoAnswer) => void
  private settled = false
  private controller: Dispatcher.DispatchController | undefined
  private stopReason: Error | undefined
  private status = 0
  private headers: IncomingHttpHeaders = {}
  private chunks: Buffer[] = []
  private size = 0

  constructor (private readonly maxBytes: number) {
    this.done = new Promise((resolve) => { this.settle = resolve })
  }

  /** Sends the request; a dispatcher that throws instead of calling back fails the exchange. */
  start (dispatcher: Dispatcher, options: Dispatcher.DispatchOptions): void {
    try {
      dispatcher.dispatch(options, this)
    } catch (error) {
      this.finish({ error: error as Error })
    }
  }

  /** Ends the exchange now with `reason`; a request still queued is aborted as soon as it starts. */
  stop (reason: Error): void {
    this.stopReason = reason
    this.controller?.abort(reason)
    this.finish({ error: reason })
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.stopReason !== undefined) controller.abort(this.stopReason)
    else this.requestStarted = true
  }

  onResponseStart (controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    this.status = status
    this.headers = headers
    // A declared length within the cap is enforced by undici itself.
    if (Number(headers['content-length']) > this.maxBytes) this.overCap(controller)
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.size += chunk.length
    if (this.size > this.maxBytes) this.overCap(controller)
    else this.chunks.push(chunk)
  }

  onResponseEnd (): void {
    this.finish({ status: this.status, headers: this.headers, text: Buffer.concat(this.chunks, this.size).toString('utf8') })
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error): void {
    this.finish({ error })
  }

  /** The rest of an answer over the cap is not read: the connection is dropped. */
  private overCap (controller: Dispatcher.DispatchController): void {
    this.finish({ status: this.status, headers: this.headers, text: undefined })
    controller.abort(new Error('answer over the body cap'))
  }

  private finish (outcome: Answer | NoAnswer): void {
    if (this.settled) return
    this.settled = true
    this.chunks = []
    this.settle(outcome)
  }
}
