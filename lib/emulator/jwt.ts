import { createHmac, timingSafeEqual } from 'node:crypto'

const HEADER = encode({ alg: 'HS256', typ: 'JWT' })

function encode (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

function hmac (data: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(data).digest()
}

/** An HS256 JWT carrying `claims`. */
export function signToken (claims: Record<string, unknown>, secret: string): string {
  const unsigned = `${HEADER}.${encode(claims)}`
  return `${unsigned}.${hmac(unsigned, secret).toString('base64url')}`
}

/** The claims of `token` when it carries a valid HS256 signature made with `secret`, else null. */
export function verifyToken (token: string, secret: string): Record<string, unknown> | null {
  const lastDot = token.lastIndexOf('.')
  const unsigned = token.slice(0, lastDot)
  const signature = Buffer.from(token.slice(lastDot + 1), 'base64url')
  const expected = hmac(unsigned, secret)
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) return null
  const payload = unsigned.slice(unsigned.indexOf('.') + 1)
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
}
