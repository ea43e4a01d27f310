import type { FastifyRequest } from 'fastify'

/**
 * Whether a browser request comes from another site and no `allowedOrigins` entry admits it.
 * Fetch Metadata decides first (`Sec-Fetch-Site`: same-origin, same-site and none pass); without
 * it, an `Origin` must be the request's own or an allowed one. Requests with neither header
 * (native apps, servers, old clients) are not browser-initiated cross-site requests and pass.
 */
export function isRefusedCrossSite (request: FastifyRequest, allowedOrigins: ReadonlySet<string>): boolean {
  const { origin } = request.headers
  switch (request.headers['sec-fetch-site']) {
    case 'same-origin':
    case 'same-site':
    case 'none':
      return false
    case 'cross-site':
      return origin === undefined || !allowedOrigins.has(origin)
  }
  if (origin === undefined || allowedOrigins.has(origin)) return false
  const own = originOf(`${request.protocol}://${request.host}`)
  return own === undefined || originOf(origin) !== own
}

/** The serialized origin of a URL (lower case, default port dropped); undefined for `null` or garbage. */
function originOf (url: string): string | undefined {
  try {
    return new URL(url).origin
  } catch {
    return undefined
  }
}
