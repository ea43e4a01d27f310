import type { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'
import type { CallerSignal } from '../client/transport.js'

/**
 * Aborted once the browser has gone away before the reply was written: read from the response
 * itself whenever asked, so a disconnect during slow auth or a slow metadata extractor is seen
 * too. It listens to the response's 'close' only once something listens to it, and makes no
 * `AbortSignal`: one costs more than 5% of a request's CPU at a moderate rate (`bench/RESULTS.md`).
 */
class BrowserGone implements CallerSignal {
  readonly #response: ServerResponse
  readonly #listeners: Array<() => void> = []
  #watching = false

  constructor (response: ServerResponse) {
    this.#response = response
  }

  get aborted (): boolean {
    return this.#response.destroyed && !this.#response.writableFinished
  }

  addEventListener (_type: 'abort', listener: () => void): void {
    this.#listeners.push(listener)
    if (this.#watching) return
    this.#watching = true
    // 'close' comes once: `on` spares the wrapper `once` would make per request.
    this.#response.on('close', () => { this.#closed() })
  }

  removeEventListener (_type: 'abort', listener: () => void): void {
    const index = this.#listeners.indexOf(listener)
    if (index !== -1) this.#listeners.splice(index, 1)
  }

  /** Each listener is called once, and only when the browser left: not on the close after a reply. */
  #closed (): void {
    if (!this.aborted) return
    for (const listener of this.#listeners.splice(0)) listener()
  }
}

export function disconnectSignal (reply: FastifyReply): CallerSignal {
  return new BrowserGone(reply.raw)
}
