import { invalidOption } from './errors.js'

/** Small register-time checks; each throws `FST_OSHARA_INVALID_OPTIONS` naming the option and the fix. */

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

export function objectOption (name: string, value: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(value)) throw invalidOption(name, `must be an object, got ${describe(value)}`, `pass { ${allowed.join(', ')} }`)
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw invalidOption(`${name}.${key}`, 'is not a known option', `remove it; known: ${allowed.join(', ')}`)
    }
  }
  return value
}

/** The bounds of an integer option, in words for its error. */
export interface IntegerRange {
  readonly min: number
  readonly max?: number
  /** After the bounds, e.g. ' ms'. */
  readonly unit?: string
  /** Why `max`, said after the bounds in the problem. */
  readonly maxReason?: string
}

/**
 * An integer within `range` (the caller handles a left-out option). `defaultValue` ends the fix as
 * "(default ...)": what leaving the option out gives, left out for an option that is required or
 * has no default.
 */
export function integerOption (name: string, value: unknown, { min, max, unit = '', maxReason }: IntegerRange, defaultValue?: number | string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || (max !== undefined && value > max)) {
    const range = max === undefined ? `>= ${min}${unit}` : `between ${min} and ${max}${unit}`
    const reason = maxReason === undefined ? '' : ` (${maxReason})`
    const fallback = defaultValue === undefined ? '' : typeof defaultValue === 'number' ? ` (default ${defaultValue})` : ` (default: ${defaultValue})`
    throw invalidOption(name, `must be an integer ${range}${reason}, got ${describe(value)}`, `set ${name} to an integer ${range}${fallback}`)
  }
  return value
}

export function booleanOption (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw invalidOption(name, `must be a boolean, got ${describe(value)}`, `set ${name} to true or false`)
  return value
}

export function functionOption<F> (name: string, value: unknown, signature: string): F | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw invalidOption(name, `must be a function, got ${describe(value)}`, `pass ${signature}`)
  return value as F
}

/**
 * A key given as `undefined` or `null` where a function belongs is almost always a function that
 * does not exist yet, e.g. `onRequest: app.authenticate` before the auth plugin is registered:
 * silently skipping it would leave the route open.
 */
export function refuseUnsetFunctions (prefix: string, object: Record<string, unknown>, names: readonly string[]): void {
  for (const name of names) {
    if (!Object.hasOwn(object, name)) continue
    const value = object[name]
    const list: unknown[] = Array.isArray(value) ? value : [value]
    const index = list.findIndex((item) => item === undefined || item === null)
    if (index === -1) continue
    throw invalidOption(Array.isArray(value) ? `${prefix}${name}[${index}]` : prefix + name, `is ${String(list[index])} where a function is expected`,
      'it is probably a function that does not exist yet (e.g. app.authenticate read before the plugin that adds it is registered): register that plugin first with await app.register(...), or remove the key')
  }
}

/** An object with these methods (a dispatcher, a logger). */
export function methodsOption<T> (name: string, value: unknown, methods: readonly string[], fix: string): T {
  if (value === null || typeof value !== 'object' || !methods.every((method) => typeof (value as Record<string, unknown>)[method] === 'function')) {
    throw invalidOption(name, `must be an object with ${methods.map((method) => `${method}()`).join(' and ')}, got ${describe(value)}`, fix)
  }
  return value as T
}

/** An absolute http(s) origin without path (a trailing slash is dropped). */
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

/**
 * A static route path: the plugin adds its own routes under it (`DELETE {path}/:session_id`,
 * `POST {prefix}/{name}`), so a route parameter (':'), wildcard ('*') or regular expression ('(')
 * would match other paths, or fail when those routes are added.
 */
const STATIC_PATH = /^\/[^?#\s:*(]*[^/?#\s:*(]$/

export function staticPathOption (name: string, value: unknown, fix: string): string {
  if (typeof value !== 'string' || !STATIC_PATH.test(value)) {
    throw invalidOption(name, `must be a static absolute path: starting with '/', without a trailing slash, route parameters (':'), wildcards ('*') or regular expressions ('('), got ${describe(value)}`, fix)
  }
  return value
}

export function stringListOption (name: string, value: unknown, fix: string): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length === 0 || !value.every((item) => typeof item === 'string' && item.length > 0)) {
    throw invalidOption(name, `must be a non-empty array of non-empty strings, got ${describe(value)}`, fix)
  }
  return value as string[]
}

export function describe (value: unknown): string {
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value)
  if (typeof value === 'object') return 'an object'
  return typeof value === 'function' ? 'a function' : `${typeof value} ${String(value)}`
}
