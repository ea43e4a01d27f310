import { invalidOption, type OsharaError } from '../errors.js'
import { VERSION } from '../version.js'
import type { OsharaSessionCreateMessage } from './channels.js'

/**
 * OpenTelemetry spans (`telemetry: { tracing: true }`), through `@opentelemetry/api`, an optional
 * peer dependency loaded at register only when asked for. The types below are the few parts of
 * that API used here, so that the package's own types never need it installed.
 */

type AttributeValue = string | number | undefined

interface Span {
  setAttributes (attributes: Record<string, AttributeValue>): unknown
  setStatus (status: { code: number, message?: string }): unknown
  end (): void
}

interface Tracer {
  startSpan (name: string, options: { kind: number, attributes: Record<string, AttributeValue> }): Span
}

/** What is used of `@opentelemetry/api`. */
export interface OpenTelemetryApi {
  trace: {
    getTracer (name: string, version: string): Tracer
    setSpan (context: unknown, span: Span): unknown
  }
  context: {
    active (): unknown
    with<T> (context: unknown, fn: () => T): T
  }
  SpanKind: { INTERNAL: number }
  SpanStatusCode: { ERROR: number }
}

/** The call options key the plugin passes its `SessionTracing` under. */
export const kTracing = Symbol('oshara tracing')

export const SESSION_CREATE_SPAN = 'oshara.session.create'

/**
 * Makes the `oshara.session.create` span, one per `createSession` call. It is INTERNAL: it stands
 * for the logical operation, and undici's instrumentation makes the CLIENT span of each HTTP
 * attempt, as its children (a CLIENT span around CLIENT spans would count one call twice).
 */
export class SessionTracing {
  readonly #api: OpenTelemetryApi
  readonly #tracer: Tracer

  constructor (api: OpenTelemetryApi) {
    this.#api = api
    this.#tracer = api.trace.getTracer('fastify-oshara-voice', VERSION)
  }

  /**
   * Runs `run` with the span active (the parent of whatever `run` starts: undici's attempt spans),
   * under the span active now (e.g. the route's, with `@fastify/otel`).
   */
  createSpan<T> (context: OsharaSessionCreateMessage, run: () => Promise<T>): Promise<T> {
    const api = this.#api
    const span = this.#tracer.startSpan(SESSION_CREATE_SPAN, {
      kind: api.SpanKind.INTERNAL,
      attributes: { 'oshara.agent': context.agent, 'oshara.request_id': context.requestId }
    })
    return api.context.with(api.trace.setSpan(api.context.active(), span), run).then((result) => {
      span.setAttributes({ 'oshara.attempts': context.attempts, 'oshara.session_id': context.sessionId })
      span.end()
      return result
    }, (error: OsharaError) => {
      span.setAttributes({ 'oshara.attempts': context.attempts, 'oshara.error.code': error.code, 'error.type': error.code, 'oshara.outcome': error.outcome })
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message })
      span.end()
      throw error
    })
  }
}

function importOpenTelemetry (): Promise<unknown> {
  return import('@opentelemetry/api')
}

/** Loads `@opentelemetry/api` for `telemetry.tracing`; fails register with the fix when it cannot be loaded. */
export async function loadTracing (load: () => Promise<unknown> = importOpenTelemetry): Promise<SessionTracing> {
  let api: OpenTelemetryApi
  try {
    api = await load() as OpenTelemetryApi
  } catch {
    throw invalidOption('telemetry.tracing', 'needs @opentelemetry/api, which is not installed', 'npm install @opentelemetry/api (or remove telemetry.tracing)')
  }
  return new SessionTracing(api)
}
