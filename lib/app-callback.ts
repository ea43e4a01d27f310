import type { FastifyBaseLogger } from 'fastify'
import { OsharaCallbackError, OsharaError } from './errors.js'

/**
 * What the browser gets when one of the app's callbacks throws: an `OsharaError` or an error
 * with a 4xx or 5xx `statusCode` as the app meant it; anything else (a bug: "Cannot read properties
 * of undefined") becomes a 500 with a safe message, and the original is logged with its stack.
 */
export function callbackFailure (callback: string, error: unknown, log: FastifyBaseLogger): unknown {
  if (error instanceof OsharaError || hasReplyStatus(error)) return error
  log.error({ err: error, callback }, `oshara: the ${callback} option threw; the browser gets a 500 FST_OSHARA_CALLBACK_FAILED`)
  return new OsharaCallbackError(callback, error)
}

function hasReplyStatus (error: unknown): boolean {
  const status = (error as { statusCode?: unknown } | null)?.statusCode
  return Number.isInteger(status) && (status as number) >= 400 && (status as number) < 600
}
