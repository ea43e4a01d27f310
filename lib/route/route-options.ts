import { invalidOption } from '../errors.js'
import { checkGroup, integer, optional, type OptionGroup, optionNames, type OptionSpec } from '../options/spec.js'
import type { OsharaRouteDocs, OsharaRouteOptions } from '../types.js'
import { describe, isPlainObject } from '../validate.js'

/** The route options' defaults (`DEFAULTS.route`). */
export const ROUTE_DEFAULTS = Object.freeze({
  /** Bytes; a token request is tiny (Fastify's own default is 1 MiB). */
  bodyLimit: 16 * 1024
})

/** A route hook: a function or an array of them. */
const hook: OptionSpec = {
  callback: true,
  check: (value, path) => {
    if (value !== undefined && !(Array.isArray(value) ? value : [value]).every((item) => typeof item === 'function')) {
      throw invalidOption(path, `must be a hook function or an array of them, got ${describe(value)}`, `pass e.g. ${path.slice(path.lastIndexOf('.') + 1)}: app.authenticate`)
    }
    return value
  }
}

/**
 * An option passed on as given once it has its type (Fastify checks some of them only when the
 * route is added, with its own errors; the docs are read by `@fastify/swagger`).
 */
function ofType<T> (type: string, is: (value: unknown) => boolean, example: string): OptionSpec<T | undefined> {
  return optional((value, path) => {
    if (!is(value)) throw invalidOption(path, `must be ${type}, got ${describe(value)}`, `e.g. ${path.slice(path.lastIndexOf('.') + 1)}: ${example}`)
    return value as T
  })
}

const isString = (value: unknown): boolean => typeof value === 'string'
const isBoolean = (value: unknown): boolean => typeof value === 'boolean'
const isStringList = (value: unknown): boolean => Array.isArray(value) && value.every(isString)

/** `routeOptions.schema`: documentation only, each field of its OpenAPI type. */
export const ROUTE_DOC_OPTIONS = {
  tags: ofType<OsharaRouteDocs['tags']>('an array of strings', isStringList, "['voice']"),
  summary: ofType<OsharaRouteDocs['summary']>('a string', isString, "'Mint a voice session'"),
  description: ofType<OsharaRouteDocs['description']>('a string', isString, "'Mints a LiveKit token for a voice call'"),
  security: ofType<OsharaRouteDocs['security']>('an array of security requirement objects (scheme name: array of scopes)',
    (value) => Array.isArray(value) && value.every((item) => isPlainObject(item) && Object.values(item).every(isStringList)), '[{ bearer: [] }]'),
  operationId: ofType<OsharaRouteDocs['operationId']>('a string', isString, "'createVoiceToken'"),
  hide: ofType<OsharaRouteDocs['hide']>('a boolean', isBoolean, 'true'),
  deprecated: ofType<OsharaRouteDocs['deprecated']>('a boolean', isBoolean, 'true'),
  externalDocs: ofType<OsharaRouteDocs['externalDocs']>('an object with a url string (and a description string)',
    (value) => isPlainObject(value) && isString(value.url) && (value.description === undefined || isString(value.description)), "{ url: 'https://docs.example.com/voice' }")
} satisfies OptionGroup<OsharaRouteDocs>

/** Pino's levels, which Fastify's default logger knows; Fastify checks a route's level only when the app has a logger. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

function checkRouteDocs (value: unknown, path: string): OsharaRouteDocs {
  if (!isPlainObject(value)) throw invalidOption(path, `must be an object, got ${describe(value)}`, 'pass documentation fields such as { tags, summary, security }')
  const names = optionNames(ROUTE_DOC_OPTIONS)
  for (const key of Object.keys(value)) {
    if (!(names as string[]).includes(key) && !key.startsWith('x-')) {
      throw invalidOption(`${path}.${key}`, 'is not accepted: the plugin owns the body, params and response schemas', `use only ${names.join(', ')}`)
    }
  }
  // Checked, then passed on whole: x-* extensions included.
  checkGroup(ROUTE_DOC_OPTIONS, value, `${path}.`)
  return value as OsharaRouteDocs
}

export const ROUTE_OPTIONS = {
  onRequest: hook,
  preParsing: hook,
  preValidation: hook,
  preHandler: hook,
  preSerialization: hook,
  onSend: hook,
  onResponse: hook,
  onError: hook,
  onTimeout: hook,
  onRequestAbort: hook,
  config: ofType<OsharaRouteOptions['config']>('an object', isPlainObject, "{ rateLimit: { max: 5, timeWindow: '1 minute' } } (read in hooks as request.routeOptions.config)"),
  bodyLimit: integer(ROUTE_DEFAULTS.bodyLimit, 1),
  logLevel: ofType<OsharaRouteOptions['logLevel']>(`one of ${LOG_LEVELS.map((level) => `'${level}'`).join(', ')}`,
    (value) => LOG_LEVELS.includes(value as string), "'warn'"),
  constraints: ofType<OsharaRouteOptions['constraints']>('an object', isPlainObject, "{ host: 'voice.example.com' }"),
  schema: optional(checkRouteDocs)
} satisfies OptionGroup<OsharaRouteOptions>

/** Route options as registered: `bodyLimit` always set. */
export type RouteSettings = OsharaRouteOptions & { bodyLimit: number }

/** An app's hooks of one stage (a function, an array, or none), as a list the plugin's own hook can join. */
export function hookList<T> (hooks: T | T[] | undefined): T[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]
}
