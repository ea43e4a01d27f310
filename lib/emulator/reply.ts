import type { IncomingMessage, ServerResponse } from 'node:http'

/** An answer, built before it is sent (so that a fault can change how it is sent). */
export interface Reply {
  status: number
  headers: Record<string, string>
  body: string
}

export function jsonReply (status: number, value: unknown, headers: Record<string, string> = {}): Reply {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(value) }
}

/**
 * The request body as text. Never settles when the client goes away mid-body: no 'error'
 * listener is attached, so Node does not emit one, and the request is simply dropped.
 */
export function readBody (req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
  })
}

/** Resolves true after `ms`, or false as soon as the response closes (the timer is then cleared). */
export function waitUnlessClosed (res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const onClose = (): void => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      res.off('close', onClose)
      resolve(true)
    }, ms)
    res.once('close', onClose)
  })
}

/** Statuses whose answers carry no body (RFC 9110): no content headers either. */
const NO_BODY = new Set([204, 304])

/** Sends `reply`; with `slowBodyMs`, sends half the body, waits, then the rest. */
export async function sendReply (res: ServerResponse, reply: Reply, slowBodyMs = 0): Promise<void> {
  if (NO_BODY.has(reply.status)) {
    const { 'content-type': _type, ...headers } = reply.headers
    res.writeHead(reply.status, headers).end()
    return
  }
  const body = Buffer.from(reply.body)
  res.writeHead(reply.status, { ...reply.headers, 'content-length': String(body.length) })
  if (slowBodyMs <= 0) {
    res.end(body)
    return
  }
  const half = Math.floor(body.length / 2)
  res.write(body.subarray(0, half))
  if (await waitUnlessClosed(res, slowBodyMs)) res.end(body.subarray(half))
}
