import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import { sessionJson } from '../client/schemas.js'
import { failure } from '../errors.js'
import type { SessionMetadata } from '../types.js'

/**
 * The signature every session minted with `tools` carries in its metadata (README "Agent tools"):
 *
 *     metadata._oshara_sig = "v1.<expiresAt>.<followed>.<mac>"
 *
 * - `expiresAt`: Unix time in whole seconds after which the signature is refused;
 * - `followed`: `1` when the plugin follows the session (it holds a limiter slot, or is tracked),
 *   so that a session unknown to the store has ended; `0` otherwise;
 * - `mac`: base64url (no padding) of HMAC-SHA256 with the signing key over the ASCII prefix
 *   `v1.<expiresAt>.<followed>.` followed by the canonical JSON of the metadata without
 *   `_oshara_sig`: the metadata as JSON (`JSON.stringify`, then parsed back), with the keys of
 *   every object sorted by UTF-16 code units, no whitespace.
 */
export const SIGNATURE_KEY = '_oshara_sig'

const VERSION = 'v1'
const SIGNATURE = /^v1\.(\d{1,12})\.([01])\.([A-Za-z0-9_-]{43})$/
const MAC_BYTES = 32
/** HKDF info of the signing key derived from `tools.secret`. */
const DERIVED_KEY_INFO = 'fastify-oshara-voice tools signing key v1'

/** JSON with the keys of every object sorted: the same text for the same data, whatever the key order. */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>
    return `{${Object.keys(object).sort().map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/** The key HMAC-SHA256 signs with when `tools.signingKey` is left out. */
export function deriveSigningKey (secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, '', DERIVED_KEY_INFO, MAC_BYTES))
}

export type VerifyResult =
  | { ok: true, followed: boolean, metadata: SessionMetadata }
  | { ok: false, reason: 'missing' | 'malformed' | 'expired' | 'mismatch' }

export interface SignerKeys {
  /** Signs, and verifies. */
  readonly signingKey: Buffer
  /** Verify only (a key being rotated out). */
  readonly previousKeys: readonly Buffer[]
  /** How long a signature holds, in milliseconds. */
  readonly ttlMs: number
}

function mac (key: Buffer, expiresAt: string, followed: string, canonical: string): Buffer {
  return createHmac('sha256', key).update(`${VERSION}.${expiresAt}.${followed}.`).update(canonical).digest()
}

/** Signs the metadata of the sessions the plugin mints, and checks what a tool call brings back. */
export class ToolSigner {
  readonly #keys: SignerKeys

  constructor (keys: SignerKeys) {
    this.#keys = keys
  }

  /**
   * The metadata to send upstream: `metadata` as JSON plus its signature. Throws
   * `FST_OSHARA_INVALID_SESSION` when the metadata already has the reserved key, or is no JSON.
   */
  sign (metadata: SessionMetadata | undefined, followed: boolean, now = Date.now()): SessionMetadata {
    const data = metadata === undefined ? {} : JSON.parse(sessionJson(metadata)) as SessionMetadata
    if (Object.hasOwn(data, SIGNATURE_KEY)) {
      throw failure('FST_OSHARA_INVALID_SESSION', 'reserved-metadata', {
        detail: `metadata carries ${SIGNATURE_KEY}, which the plugin sets on every session (tools)`,
        words: { key: SIGNATURE_KEY }
      })
    }
    const expiresAt = String(Math.floor((now + this.#keys.ttlMs) / 1000))
    const flag = followed ? '1' : '0'
    const signature = mac(this.#keys.signingKey, expiresAt, flag, canonicalJson(data)).toString('base64url')
    return { ...data, [SIGNATURE_KEY]: `${VERSION}.${expiresAt}.${flag}.${signature}` }
  }

  /** Checks a tool call's `_session.metadata`; on success, the metadata without its signature. */
  verify (metadata: SessionMetadata, now = Date.now()): VerifyResult {
    const { [SIGNATURE_KEY]: value, ...rest } = metadata
    if (value === undefined) return { ok: false, reason: 'missing' }
    const parts = typeof value === 'string' ? SIGNATURE.exec(value) : null
    if (parts === null) return { ok: false, reason: 'malformed' }
    const [, expiresAt, flag, given] = parts as unknown as [string, string, string, string]
    if (Number(expiresAt) * 1000 <= now) return { ok: false, reason: 'expired' }
    const givenMac = Buffer.from(given, 'base64url')
    const canonical = canonicalJson(rest)
    // Every key is tried, so the time taken does not tell which one matched.
    let matched = false
    for (const key of [this.#keys.signingKey, ...this.#keys.previousKeys]) {
      if (timingSafeEqual(mac(key, expiresAt, flag, canonical), givenMac)) matched = true
    }
    if (!matched) return { ok: false, reason: 'mismatch' }
    return { ok: true, followed: flag === '1', metadata: rest }
  }
}
