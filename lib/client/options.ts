import type { Dispatcher } from 'undici'
import { invalidOption } from '../errors.js'
import { CLIENT_OPTIONS, type Normalized, normalizeGroup } from '../options/registry.js'
import { describe, isPlainObject } from '../validate.js'
import type { BreakerOptions } from './breaker.js'
import type { RetryOptions } from './retry.js'

/** Where the client reports minted sessions (info) and retries (warn); `request.log`, pino, or `console` fit. */
export interface OsharaLogger {
  info (object: Record<string, unknown>, message: string): void
  warn (object: Record<string, unknown>, message: string): void
}

// Names, defaults and checks of these options: CLIENT_OPTIONS in lib/options/registry.ts.
export interface OsharaClientOptions {
  /** Sent as `Origin`; must be on the character's `allowed_origins`. An absolute http(s) origin, no path. */
  origin: string
  /** Default `https://api.oshara.ai`. */
  baseUrl?: string
  /** Sent as `X-API-Key` on every upstream call; never sent to the browser. */
  apiKey?: string
  /** Per-attempt timeout. Default 10000. */
  timeoutMs?: number
  /** Whole-call budget, retries included. Default 15000. */
  deadlineMs?: number
  retry?: RetryOptions | false
  breaker?: BreakerOptions | false
  /** An undici dispatcher (e.g. a `ProxyAgent`); the client never closes it. Default: its own keep-alive `Pool`. */
  dispatcher?: Dispatcher
  logger?: OsharaLogger
}

/** Every client option as its check returned it (`baseUrl` split in two), so none is checked and then dropped. */
export interface ClientConfig extends Omit<Normalized<typeof CLIENT_OPTIONS>, 'baseUrl'> {
  /** Origin of `baseUrl` (what the pool connects to). */
  readonly upstreamOrigin: string
  /** Path of `baseUrl` without a trailing slash, prefixed to every endpoint. */
  readonly basePath: string
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/

export function normalizeClientOptions (options: unknown): ClientConfig {
  if (!isPlainObject(options)) throw invalidOption('options', `must be an object, got ${describe(options)}`, 'pass { origin, ... }')
  const { baseUrl, ...given } = normalizeGroup(CLIENT_OPTIONS, options, 'options', '')
  if (given.apiKey !== undefined && baseUrl.protocol === 'http:' && !LOOPBACK.test(baseUrl.hostname)) {
    throw invalidOption('apiKey', `would be sent in clear text to ${baseUrl.origin}`, 'use an https baseUrl (plain http is accepted only for loopback hosts)')
  }
  return Object.freeze({ ...given, upstreamOrigin: baseUrl.origin, basePath: baseUrl.pathname.replace(/\/+$/, '') })
}
