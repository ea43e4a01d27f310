import type { Dispatcher } from 'undici'
import { invalidOption } from '../errors.js'
import { booleanOption, describe, integerOption, isPlainObject, objectOption } from '../validate.js'
import type { BreakerOptions } from './breaker.js'
import { DEFAULT_RETRY, NO_RETRY, type RetryOptions, type RetryPolicy } from './retry.js'

/** Where the client reports minted sessions (info) and retries (warn); `request.log`, pino, or `console` fit. */
export interface OsharaLogger {
  info (object: Record<string, unknown>, message: string): void
  warn (object: Record<string, unknown>, message: string): void
}

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

export const CLIENT_OPTION_NAMES = ['origin', 'baseUrl', 'apiKey', 'timeoutMs', 'deadlineMs', 'retry', 'breaker', 'dispatcher', 'logger'] as const

export interface ClientConfig {
  readonly origin: string
  /** Origin of `baseUrl` (what the pool connects to). */
  readonly upstreamOrigin: string
  /** Path of `baseUrl` without a trailing slash, prefixed to every endpoint. */
  readonly basePath: string
  readonly apiKey: string | undefined
  readonly timeoutMs: number
  readonly deadlineMs: number
  readonly retry: RetryPolicy
  readonly breaker: Required<BreakerOptions> | undefined
  readonly dispatcher: Dispatcher | undefined
  readonly logger: OsharaLogger | undefined
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/

export function normalizeOrigin (name: string, value: unknown): string {
  const fix = `set ${name} to your site's origin, scheme and host only, e.g. 'https://app.example.com'`
  if (typeof value !== 'string' || value === '') throw invalidOption(name, `is required and must be a string, got ${describe(value)}`, fix)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalidOption(name, `is not an absolute URL: ${describe(value)}`, fix)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidOption(name, `must use http or https, got ${url.protocol}`, fix)
  if (url.origin !== value.replace(/\/$/, '')) {
    throw invalidOption(name, `must be an origin without path, query, credentials or upper case: ${describe(value)}`, `use '${url.origin}'`)
  }
  return url.origin
}

function normalizeBaseUrl (value: unknown): URL {
  const fix = "set baseUrl to the Oshara API root, e.g. 'https://api.oshara.ai' (or the emulator's url)"
  if (value === undefined) return new URL('https://api.oshara.ai')
  let url: URL | undefined
  try {
    url = typeof value === 'string' ? new URL(value) : undefined
  } catch {}
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw invalidOption('baseUrl', `must be an absolute http(s) URL, got ${describe(value)}`, fix)
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw invalidOption('baseUrl', 'must not carry a query, fragment or credentials', fix)
  }
  return url
}

function normalizeApiKey (value: unknown, baseUrl: URL): string | undefined {
  if (value === undefined) return undefined
  // Never echo the value: it is a secret.
  if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value)) {
    throw invalidOption('apiKey', 'must be a non-empty string of printable characters without spaces', 'pass the Oshara API key (sk_...) from your environment, e.g. process.env.OSHARA_API_KEY')
  }
  if (baseUrl.protocol === 'http:' && !LOOPBACK.test(baseUrl.hostname)) {
    throw invalidOption('apiKey', `would be sent in clear text to ${baseUrl.origin}`, 'use an https baseUrl (plain http is accepted only for loopback hosts)')
  }
  return value
}

function normalizeRetry (value: unknown): RetryPolicy {
  if (value === undefined) return DEFAULT_RETRY
  if (value === false) return NO_RETRY
  const retry = objectOption('retry', value, ['retries', 'minDelayMs', 'maxDelayMs', 'maxRetryAfterMs', 'statusCodes', 'onTimeout', 'on429'])
  let statusCodes = DEFAULT_RETRY.statusCodes
  if (retry.statusCodes !== undefined) {
    const codes = retry.statusCodes
    if (!Array.isArray(codes) || !codes.every((code) => Number.isInteger(code) && code >= 500 && code <= 599)) {
      throw invalidOption('retry.statusCodes', `must be an array of 5xx statuses, got ${describe(codes)}`, 'e.g. [503]; 429 is governed by retry.on429')
    }
    statusCodes = new Set(codes as number[])
  }
  return Object.freeze({
    retries: integerOption('retry.retries', retry.retries, DEFAULT_RETRY.retries, 0, 10),
    minDelayMs: integerOption('retry.minDelayMs', retry.minDelayMs, DEFAULT_RETRY.minDelayMs, 0),
    maxDelayMs: integerOption('retry.maxDelayMs', retry.maxDelayMs, DEFAULT_RETRY.maxDelayMs, 0),
    maxRetryAfterMs: integerOption('retry.maxRetryAfterMs', retry.maxRetryAfterMs, DEFAULT_RETRY.maxRetryAfterMs, 0),
    statusCodes,
    onTimeout: booleanOption('retry.onTimeout', retry.onTimeout, DEFAULT_RETRY.onTimeout),
    on429: booleanOption('retry.on429', retry.on429, DEFAULT_RETRY.on429)
  })
}

function normalizeBreaker (value: unknown): Required<BreakerOptions> | undefined {
  if (value === false) return undefined
  const breaker = objectOption('breaker', value ?? {}, ['failureThreshold', 'cooldownMs'])
  return {
    failureThreshold: integerOption('breaker.failureThreshold', breaker.failureThreshold, 5, 1),
    cooldownMs: integerOption('breaker.cooldownMs', breaker.cooldownMs, 10000, 1)
  }
}

function checkShape<T> (name: string, value: unknown, methods: string[], fix: string): T | undefined {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object' || !methods.every((method) => typeof (value as Record<string, unknown>)[method] === 'function')) {
    throw invalidOption(name, `must be an object with ${methods.map((method) => `${method}()`).join(' and ')}, got ${describe(value)}`, fix)
  }
  return value as T
}

export function normalizeClientOptions (options: unknown): ClientConfig {
  if (!isPlainObject(options)) throw invalidOption('options', `must be an object, got ${describe(options)}`, 'pass { origin, ... }')
  objectOption('options', options, CLIENT_OPTION_NAMES)
  const baseUrl = normalizeBaseUrl(options.baseUrl)
  return Object.freeze({
    origin: normalizeOrigin('origin', options.origin),
    upstreamOrigin: baseUrl.origin,
    basePath: baseUrl.pathname.replace(/\/+$/, ''),
    apiKey: normalizeApiKey(options.apiKey, baseUrl),
    timeoutMs: integerOption('timeoutMs', options.timeoutMs, 10000, 1),
    deadlineMs: integerOption('deadlineMs', options.deadlineMs, 15000, 1),
    retry: normalizeRetry(options.retry),
    breaker: normalizeBreaker(options.breaker),
    dispatcher: checkShape<Dispatcher>('dispatcher', options.dispatcher, ['request'], 'pass an undici Dispatcher such as new ProxyAgent(url), or leave it out'),
    logger: checkShape<OsharaLogger>('logger', options.logger, ['info', 'warn'], 'pass a pino-style logger (fastify.log) or leave it out')
  })
}
