import { createHash } from 'node:crypto'
import type { Normalized } from '../options/spec.js'
import type { TOOLS_OPTIONS } from './tools-options.js'
import { deriveSigningKey, ToolSigner } from './signature.js'

/** Oshara's default token lifetime (`expires_in_seconds`), which a signature must outlive. */
const TOKEN_LIFETIME_MS = 3600 * 1000

/** `tools`, checked and turned into what signing and the tool routes need. */
export interface ToolsConfig {
  readonly signer: ToolSigner
  /** SHA-256 of `secret`: compared in constant time with the digest of the header (equal lengths whatever was sent). */
  readonly secretDigest: Buffer
  readonly secretHeader: string
  readonly prefix: string
  readonly timeoutMs: number
}

export function sha256 (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** Signatures hold for the token's lifetime plus `maxTrackMs` (`tracking.maxTrackMs`, or its default without tracking). */
export function toolsConfig (tools: Normalized<typeof TOOLS_OPTIONS> | undefined, maxTrackMs: number): ToolsConfig | undefined {
  if (tools === undefined) return undefined
  const { secret, signingKey, previousSigningKeys, prefix, secretHeader, timeoutMs } = tools
  return Object.freeze({
    signer: new ToolSigner({
      signingKey: signingKey === undefined ? deriveSigningKey(secret) : Buffer.from(signingKey),
      previousKeys: previousSigningKeys.map((key) => Buffer.from(key)),
      ttlMs: TOKEN_LIFETIME_MS + maxTrackMs
    }),
    secretDigest: sha256(secret),
    secretHeader,
    prefix,
    timeoutMs
  })
}
