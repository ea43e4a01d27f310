import type { Dispatcher } from 'undici'
import { invalidOption } from '../errors.js'
import { checkGroup, duration, flag, integer, type Normalized, normalizeGroup, optional, type OptionGroup, optionNames } from '../options/spec.js'
import { describe, isPlainObject, methodsOption, normalizeOrigin } from '../validate.js'
import type { BreakerOptions } from './breaker.js'
import type { RetryOptions, RetryPolicy } from './retry.js'

/** Where the client reports minted sessions (info) and retries (warn); `request.log`, pino, or `console` fit. */
export interface OsharaLogger {
  info (object: Record<string, unknown>, message: string): void
  warn (object: Record<string, unknown>, message: string): void
}

// Names, defaults and checks of these options: CLIENT_OPTIONS below.
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

/** Upstream options of the built-in client; the plugin accepts them too, but not together with `client`. */
export type OsharaUpstreamOptions = Omit<OsharaClientOptions, 'origin' | 'logger'>

/** The defaults of the client's options. */
export const CLIENT_DEFAULTS = Object.freeze({
  client: Object.freeze({
    baseUrl: 'https://api.oshara.ai',
    timeoutMs: 10000,
    deadlineMs: 15000
  }),
  retry: Object.freeze({
    retries: 2,
    minDelayMs: 250,
    maxDelayMs: 2000,
    maxRetryAfterMs: 5000,
    statusCodes: Object.freeze([503] as const),
    onTimeout: false,
    on429: false
  } satisfies { readonly [K in keyof RetryOptions]-?: unknown }),
  breaker: Object.freeze({
    failureThreshold: 5,
    cooldownMs: 10000
  } satisfies { readonly [K in keyof BreakerOptions]-?: unknown }),
})

function checkBaseUrl (value: unknown, path: string): URL {
  const fix = "set baseUrl to the Oshara API root, e.g. 'https://api.oshara.ai' (or the emulator's url)"
  let url: URL | undefined
  try {
    url = typeof value === 'string' ? new URL(value) : undefined
  } catch {}
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw invalidOption(path, `must be an absolute http(s) URL, got ${describe(value)}`, fix)
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw invalidOption(path, 'must not carry a query, fragment or credentials', fix)
  }
  return url
}

function checkApiKey (value: unknown, path: string): string {
  // Never echo the value: it is a secret.
  if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value)) {
    throw invalidOption(path, 'must be a non-empty string of printable characters without spaces', 'pass the Oshara API key (sk_...) from your environment, e.g. process.env.OSHARA_API_KEY')
  }
  return value
}

function checkStatusCodes (value: unknown, path: string): ReadonlySet<number> {
  if (!Array.isArray(value) || !value.every((code) => Number.isInteger(code) && code >= 500 && code <= 599)) {
    throw invalidOption(path, `must be an array of 5xx statuses, got ${describe(value)}`, 'e.g. [503]; 429 is governed by retry.on429')
  }
  return new Set(value as number[])
}

export const RETRY_OPTIONS = {
  retries: integer(CLIENT_DEFAULTS.retry.retries, 0, 10),
  minDelayMs: duration(CLIENT_DEFAULTS.retry.minDelayMs, 0),
  maxDelayMs: duration(CLIENT_DEFAULTS.retry.maxDelayMs, 0),
  maxRetryAfterMs: duration(CLIENT_DEFAULTS.retry.maxRetryAfterMs, 0),
  statusCodes: { check: (value, path) => value === undefined ? new Set<number>(CLIENT_DEFAULTS.retry.statusCodes) : checkStatusCodes(value, path) },
  onTimeout: flag(CLIENT_DEFAULTS.retry.onTimeout),
  on429: flag(CLIENT_DEFAULTS.retry.on429)
} satisfies OptionGroup<RetryOptions>

/** The policy when `retry` is left out. */
export const DEFAULT_RETRY: RetryPolicy = Object.freeze(checkGroup(RETRY_OPTIONS, {}, 'retry.'))
/** `retry: false`: one attempt. */
const NO_RETRY: RetryPolicy = Object.freeze({ ...DEFAULT_RETRY, retries: 0 })

export const BREAKER_OPTIONS = {
  failureThreshold: integer(CLIENT_DEFAULTS.breaker.failureThreshold, 1),
  cooldownMs: duration(CLIENT_DEFAULTS.breaker.cooldownMs, 1)
} satisfies OptionGroup<BreakerOptions>

/** The client's options that the plugin also accepts and hands to the client it makes. */
export const UPSTREAM_OPTIONS = {
  baseUrl: { check: (value, path) => checkBaseUrl(value === undefined ? CLIENT_DEFAULTS.client.baseUrl : value, path) },
  apiKey: optional(checkApiKey),
  timeoutMs: duration(CLIENT_DEFAULTS.client.timeoutMs, 1),
  deadlineMs: duration(CLIENT_DEFAULTS.client.deadlineMs, 1),
  retry: {
    check: (value, path): RetryPolicy => {
      if (value === undefined) return DEFAULT_RETRY
      if (value === false) return NO_RETRY
      return Object.freeze(normalizeGroup(RETRY_OPTIONS, value, path))
    }
  },
  breaker: {
    check: (value, path): Required<BreakerOptions> | undefined =>
      value === false ? undefined : Object.freeze(normalizeGroup(BREAKER_OPTIONS, value ?? {}, path))
  },
  dispatcher: optional((value, path) => methodsOption<Dispatcher>(path, value, ['request', 'dispatch'], 'pass an undici Dispatcher such as new ProxyAgent(url), or leave it out'))
} satisfies OptionGroup<OsharaUpstreamOptions>

/** Names of `UPSTREAM_OPTIONS`: what the plugin forwards to its own client, and refuses beside `client`. */
export const UPSTREAM_OPTION_NAMES = optionNames(UPSTREAM_OPTIONS)

export const CLIENT_OPTIONS = {
  origin: { check: (value, path) => normalizeOrigin(path, value) },
  ...UPSTREAM_OPTIONS,
  logger: optional((value, path) => methodsOption<OsharaLogger>(path, value, ['info', 'warn'], 'pass a pino-style logger (fastify.log) or leave it out'))
} satisfies OptionGroup<OsharaClientOptions>

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
