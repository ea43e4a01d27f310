import type { FastifyReply } from 'fastify'
import type { AbortSignalLike } from '../client/client.js'

/**
 * Aborted once the browser goes away before the reply is written. Made when the request
 * arrives, so a disconnect during slow auth or a slow metadata extractor is seen too. Made for
 * every request, so it is a plain object rather than an AbortController (which costs more).
 */
export class DisconnectSignal implements AbortSignalLike {
  aborted: boolean
  private listener: (() => void) | undefined

  constructor (reply: FastifyReply) {
    const response = reply.raw
    this.aborted = response.destroyed
    // 'close' comes once: `on` spares the wrapper `once` would make per request.
    response.on('close', () => {
      if (response.writableFinished) return
      this.aborted = true
      this.listener?.()
    })
  }

  /** The client listens with one listener at a time. */
  addEventListener (_type: 'abort', listener: () => void): void {
    this.listener = listener
  }

  removeEventListener (): void {
    this.listener = undefined
  }
}
