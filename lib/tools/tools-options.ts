import { invalidOption } from '../errors.js'
import { duration, optional, type OptionGroup } from '../options/spec.js'
import type { OsharaToolsOptions } from '../types.js'
import { describe, staticPathOption } from '../validate.js'

/**
 * The `tools` options' defaults (`DEFAULTS.tools`). Also: `signingKey` is derived from `secret`;
 * signatures hold for 1 h (Oshara's token lifetime) plus `tracking.maxTrackMs`.
 */
export const TOOLS_DEFAULTS = Object.freeze({
  prefix: '/oshara/tools',
  secretHeader: 'x-oshara-secret',
  timeoutMs: 8000
})

/** Oshara's agent worker gives up on a tool after 10 s. */
const TOOL_TIMEOUT_MAX_MS = 10_000
const MIN_SECRET_LENGTH = 16
const MIN_SIGNING_KEY_LENGTH = 32

function checkToolSecret (value: unknown, path: string): string {
  // Never echo the value: it is a secret.
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH || !/^[\x21-\x7e]+$/.test(value)) {
    throw invalidOption(path, `is required: a string of at least ${MIN_SECRET_LENGTH} printable characters without spaces (it is sent as a header)`,
      "generate one, e.g. crypto.randomBytes(32).toString('base64url'), keep it in your environment, and put the same value in the tool's config.headers on the character")
  }
  return value
}

function checkSigningKey (value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length < MIN_SIGNING_KEY_LENGTH) {
    throw invalidOption(path, `must be a string of at least ${MIN_SIGNING_KEY_LENGTH} characters`, "generate one, e.g. crypto.randomBytes(32).toString('base64url'), and keep it in your environment")
  }
  return value
}

function checkPreviousSigningKeys (value: unknown, path: string): readonly string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw invalidOption(path, `must be an array of signing keys, got ${describe(value)}`, 'list the keys being rotated out, e.g. [process.env.OLD_TOOLS_SIGNING_KEY]')
  return value.map((key, index) => checkSigningKey(key, `${path}[${index}]`))
}

function checkToolPrefix (value: unknown, path: string): string {
  if (value === undefined) return TOOLS_DEFAULTS.prefix
  return staticPathOption(path, value, "e.g. prefix: '/api/oshara-tools' (the tool's name is added after it)")
}

function checkSecretHeader (value: unknown, path: string): string {
  if (value === undefined) return TOOLS_DEFAULTS.secretHeader
  if (typeof value !== 'string' || !/^[A-Za-z0-9-]+$/.test(value)) {
    throw invalidOption(path, `must be a header name, got ${describe(value)}`, "e.g. secretHeader: 'x-oshara-secret' (the header you list in the tool's config.headers)")
  }
  return value.toLowerCase()
}

export const TOOLS_OPTIONS = {
  secret: { check: checkToolSecret },
  signingKey: optional(checkSigningKey),
  previousSigningKeys: { check: checkPreviousSigningKeys },
  prefix: { check: checkToolPrefix },
  secretHeader: { check: checkSecretHeader },
  timeoutMs: duration(TOOLS_DEFAULTS.timeoutMs, 1, TOOL_TIMEOUT_MAX_MS)
} satisfies OptionGroup<OsharaToolsOptions>
