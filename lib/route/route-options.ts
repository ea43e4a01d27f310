import { invalidOption } from '../errors.js'
import { asGiven, integer, optional, type OptionGroup, optionNames, type OptionSpec } from '../options/spec.js'
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

/** `routeOptions.schema`: documentation only. */
export const ROUTE_DOC_OPTIONS = {
  tags: asGiven<OsharaRouteDocs['tags']>(),
  summary: asGiven<OsharaRouteDocs['summary']>(),
  description: asGiven<OsharaRouteDocs['description']>(),
  security: asGiven<OsharaRouteDocs['security']>(),
  operationId: asGiven<OsharaRouteDocs['operationId']>(),
  hide: asGiven<OsharaRouteDocs['hide']>(),
  deprecated: asGiven<OsharaRouteDocs['deprecated']>(),
  externalDocs: asGiven<OsharaRouteDocs['externalDocs']>()
} satisfies OptionGroup<OsharaRouteDocs>

function checkRouteDocs (value: unknown, path: string): OsharaRouteDocs {
  if (!isPlainObject(value)) throw invalidOption(path, `must be an object, got ${describe(value)}`, 'pass documentation fields such as { tags, summary, security }')
  const names = optionNames(ROUTE_DOC_OPTIONS)
  for (const key of Object.keys(value)) {
    if (!(names as string[]).includes(key) && !key.startsWith('x-')) {
      throw invalidOption(`${path}.${key}`, 'is not accepted: the plugin owns the body, params and response schemas', `use only ${names.join(', ')}`)
    }
  }
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
  config: asGiven<OsharaRouteOptions['config']>(),
  bodyLimit: integer(ROUTE_DEFAULTS.bodyLimit, 1),
  logLevel: asGiven<OsharaRouteOptions['logLevel']>(),
  constraints: asGiven<OsharaRouteOptions['constraints']>(),
  schema: optional(checkRouteDocs)
} satisfies OptionGroup<OsharaRouteOptions>

/** Route options as registered: `bodyLimit` always set. */
export type RouteSettings = OsharaRouteOptions & { bodyLimit: number }

/** An app's hooks of one stage (a function, an array, or none), as a list the plugin's own hook can join. */
export function hookList<T> (hooks: T | T[] | undefined): T[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]
}
