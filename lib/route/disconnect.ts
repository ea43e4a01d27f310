import type { FastifyReply } from 'fastify'

/**
 * Aborted once the browser goes away before the reply is written. Made when the request
 * arrives, so a disconnect during slow auth or a slow metadata extractor is seen too.
 */
export function disconnectSignal (reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  const response = reply.raw
  if (response.destroyed) controller.abort()
  // 'close' comes once: `on` spares the wrapper `once` would make per request.
  else response.on('close', () => { if (!response.writableFinished) controller.abort() })
  return controller.signal
}
