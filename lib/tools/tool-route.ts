import { timingSafeEqual } from 'node:crypto'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, onRequestHookHandler, onResponseHookHandler } from 'fastify'
import { Kind, type TSchema } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import { failure, invalidOption, messageOf, OsharaError, OsharaToolFailedError } from '../errors.js'
import { type OsharaToolMessage, toolChannel } from '../observability/channels.js'
import type { SessionStats } from '../observability/stats.js'
import { normalizeGroup } from '../options/spec.js'
import { hookList, ROUTE_OPTIONS, type RouteSettings } from '../route/route-options.js'
import type { OsharaToolContext, OsharaToolDefinition, OsharaToolOutcome, SessionMetadata } from '../types.js'
import { describe, isPlainObject } from '../validate.js'
import { runWithDeadline, TIMED_OUT } from './deadline.js'
import type { SessionCheck } from './session-check.js'
import { argumentsProblem, compileArgs } from './tool-args.js'
import { sha256, type ToolsConfig } from './tools-config.js'

/** What the tool routes of one registration share. */
export interface ToolRuntime {
  readonly config: ToolsConfig
  /** Undefined without limits or tracking (or with a store that cannot tell). */
  readonly sessionCheck: SessionCheck | undefined
  readonly stats: SessionStats
  /** Names registered so far. */
  readonly names: Set<string>
}

/** One registered tool. */
interface Tool {
  readonly name: string
  readonly runtime: ToolRuntime
  readonly check: TypeCheck<TSchema>
  readonly handler: OsharaToolDefinition['handler']
}

/** How a call is going: what `onResponse` reports. */
interface CallRecord {
  outcome: OsharaToolOutcome | undefined
  sessionId: string | undefined
}

const kCall = Symbol('oshara tool call')
type ToolRequest = FastifyRequest & { [kCall]: CallRecord | null }

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/
const REFUSED_CODE = 'FST_OSHARA_TOOL_REFUSED'

/** `fastify.oshara.tool(name, definition)`: checks the definition, then adds `POST {prefix}/{name}` in a context of its own. */
export function registerTool (fastify: FastifyInstance, runtime: ToolRuntime, name: string, definition: OsharaToolDefinition): void {
  const path = `tool(${JSON.stringify(name)})`
  if (typeof name !== 'string' || !TOOL_NAME.test(name)) {
    throw invalidOption('tool name', `must be 1 to 64 letters, digits, _ or -, got ${describe(name)}`, "use the tool's name on the character, e.g. 'lookup_order'")
  }
  if (runtime.names.has(name)) throw invalidOption(path, 'is already registered', 'register each tool once, or give it another name')
  if (!isPlainObject(definition)) throw invalidOption(path, `must be given { args, handler }, got ${describe(definition)}`, "e.g. app.oshara.tool('lookup_order', { args: Type.Object({ order_id: Type.String() }), handler })")
  const { args, handler, ...options } = definition
  if (args === null || typeof args !== 'object' || (args as Partial<TSchema>)[Kind] === undefined) {
    throw invalidOption(`${path}.args`, `must be a TypeBox schema, got ${describe(args)}`, 'e.g. args: Type.Object({ order_id: Type.String() }) (Type.Object({}) for a tool without arguments)')
  }
  if (typeof handler !== 'function') throw invalidOption(`${path}.handler`, `must be a function, got ${describe(handler)}`, 'pass async (args, { sessionId, metadata, key, request, signal }) => result')
  const settings = normalizeGroup(ROUTE_OPTIONS, options, path, `${path}.`) as RouteSettings
  const tool: Tool = { name, runtime, check: compileArgs(args), handler }
  try {
    fastify.register(async function osharaTool (child) {
      child.decorateRequest(kCall, null)
      child.setErrorHandler(replyToError)
      addToolRoute(child, tool, settings)
    })
  } catch {
    // Fastify takes no route once the app has started.
    throw invalidOption(path, 'came after the app started (ready or listen)', 'register tools before app.ready() or app.listen(), e.g. right after await app.register(osharaVoice, ...)')
  }
  runtime.names.add(name)
  runtime.stats.addTool(name)
}

function addToolRoute (child: FastifyInstance, tool: Tool, settings: RouteSettings): void {
  const { schema: docs, onRequest, onResponse, ...hooks } = settings
  const { config } = tool.runtime
  const checkSecret: onRequestHookHandler = function checkSecret (request, _reply, done) {
    const call: CallRecord = { outcome: undefined, sessionId: undefined };
    (request as ToolRequest)[kCall] = call
    const given = request.headers[config.secretHeader]
    // Digests of equal length, compared in constant time: the time taken tells nothing of the secret.
    if (typeof given === 'string' && timingSafeEqual(sha256(given), config.secretDigest)) return done()
    call.outcome = 'unauthorized'
    request.log.warn({ tool: tool.name }, `oshara: tool call refused: the ${config.secretHeader} header is missing or wrong`)
    done(failure('FST_OSHARA_TOOL_UNAUTHORIZED', 'no-secret'))
  }
  const report: onResponseHookHandler = function reportToolCall (request, reply, done) {
    reportCall(tool, request as ToolRequest, reply)
    done()
  }
  child.route({
    method: 'POST',
    url: `${config.prefix}/${tool.name}`,
    ...hooks,
    onRequest: [checkSecret, ...hookList(onRequest)],
    onResponse: [report, ...hookList(onResponse)],
    ...(docs === undefined ? {} : { schema: docs as FastifySchema }),
    handler: (request, reply) => handleToolCall(tool, request as ToolRequest, reply)
  })
}

/** The `_session` Oshara's worker adds to the arguments; undefined when it is not there as documented. */
function sessionOf (body: Record<string, unknown>): { sessionId: string, metadata: SessionMetadata } | undefined {
  const session = body._session
  if (!isPlainObject(session) || typeof session.session_id !== 'string' || session.session_id === '' || !isPlainObject(session.metadata)) return undefined
  return { sessionId: session.session_id, metadata: session.metadata }
}

/** `_session.session_id` when it is a string, for the logs and `oshara:tool` (also when the rest of `_session` is not as documented). */
function sessionIdOf (body: Record<string, unknown>): string | undefined {
  const session = body._session
  return isPlainObject(session) && typeof session.session_id === 'string' ? session.session_id : undefined
}

function refuse (reply: FastifyReply, call: CallRecord, outcome: OsharaToolOutcome, error: OsharaError): FastifyReply {
  call.outcome = outcome
  return reply.code(error.statusCode).send({ error: error.message, code: error.code })
}

/** The checks in order (secret already passed in `onRequest`): signature 403, ended 410, arguments 400; then the handler. */
async function handleToolCall (tool: Tool, request: ToolRequest, reply: FastifyReply): Promise<FastifyReply> {
  const call = request[kCall] as CallRecord
  const { signer } = tool.runtime.config
  const body = isPlainObject(request.body) ? request.body : {}
  const session = sessionOf(body)
  call.sessionId = session?.sessionId ?? sessionIdOf(body)
  const verified = session === undefined ? { ok: false as const, reason: 'missing' as const } : signer.verify(session.metadata)
  if (!verified.ok) {
    request.log.warn({ tool: tool.name, session_id: call.sessionId, reason: verified.reason },
      'oshara: tool call refused: its session metadata carries no valid signature (a session this app did not mint, edited metadata, or an expired or unknown signing key)')
    return refuse(reply, call, 'forbidden', failure('FST_OSHARA_TOOL_FORBIDDEN', 'unsigned'))
  }
  const { sessionId } = session as NonNullable<typeof session>
  const standing = await tool.runtime.sessionCheck?.standing(sessionId, verified.followed, request.log)
  if (standing?.ended === true) {
    request.log.info({ tool: tool.name, session_id: sessionId }, 'oshara: tool call refused: the session has ended')
    return refuse(reply, call, 'ended', failure('FST_OSHARA_SESSION_ENDED', 'ended'))
  }
  const { _session: _, ...args } = body
  const problem = argumentsProblem(tool.check, args)
  if (problem !== undefined) {
    request.log.info({ tool: tool.name, session_id: sessionId, problem }, 'oshara: tool call refused: invalid arguments')
    return refuse(reply, call, 'invalid_arguments', failure('FST_OSHARA_TOOL_INVALID_ARGUMENTS', 'mismatch', { words: { problem } }))
  }
  const context: Omit<OsharaToolContext, 'signal'> = { sessionId, metadata: verified.metadata, key: standing?.key, request }
  let result: unknown
  try {
    result = await runWithDeadline((signal) => tool.handler(args, { ...context, signal }), tool.runtime.config.timeoutMs)
  } catch (error) {
    return replyToHandlerError(tool, call, error, request, reply)
  }
  if (result === TIMED_OUT) {
    request.log.warn({ tool: tool.name, session_id: sessionId, timeoutMs: tool.runtime.config.timeoutMs }, 'oshara: tool handler passed its deadline (tools.timeoutMs); its signal was aborted')
    return refuse(reply, call, 'timeout', failure('FST_OSHARA_TOOL_TIMEOUT', 'deadline'))
  }
  let payload: string
  try {
    payload = JSON.stringify(result === undefined ? null : result)
  } catch (error) {
    return replyToHandlerError(tool, call, error, request, reply)
  }
  call.outcome = 'ok'
  return reply.code(200).type('application/json; charset=utf-8').send(payload)
}

function isClientError (error: unknown): error is { statusCode: number, message?: unknown, code?: unknown } {
  const status = (error as { statusCode?: unknown } | null)?.statusCode
  return typeof status === 'number' && status >= 400 && status < 500
}

/** A handler's 4xx error is its answer (message and code as given); anything else is a 500 with a safe message, the original logged. */
function replyToHandlerError (tool: Tool, call: CallRecord, error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (isClientError(error)) {
    call.outcome = 'refused'
    return reply.code(error.statusCode).send({ error: String(error.message), code: typeof error.code === 'string' ? error.code : REFUSED_CODE })
  }
  request.log.error({ err: error, tool: tool.name, session_id: call.sessionId }, 'oshara: tool handler failed; the agent gets a 500 FST_OSHARA_TOOL_FAILED')
  return refuse(reply, call, 'failed', failure('FST_OSHARA_TOOL_FAILED', 'threw'))
}

/**
 * Errors before the handler (the secret, the app's own hooks, body parsing, a store down) as
 * `{ error, code }`: a 4xx or an `OsharaError` as it is, anything else a 500 with a safe message.
 */
function replyToError (this: FastifyInstance, error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const status = error.statusCode
  if (error instanceof OsharaError || (typeof status === 'number' && status >= 400 && status < 500)) {
    return reply.code(status as number).send({ error: error.message, code: typeof error.code === 'string' ? error.code : REFUSED_CODE })
  }
  request.log.error({ err: error }, 'oshara: tool call failed before its handler; the agent gets a 500 FST_OSHARA_TOOL_FAILED')
  return reply.code(500).send({ error: messageOf('FST_OSHARA_TOOL_FAILED', 'threw'), code: OsharaToolFailedError.code })
}

/** The outcome of a reply the handler did not decide (an error before it). */
function outcomeOfStatus (status: number): OsharaToolOutcome {
  if (status === 401) return 'unauthorized'
  if (status === 400 || status === 413 || status === 415) return 'invalid_arguments'
  if (status === 503) return 'unavailable'
  return status < 500 ? 'refused' : 'failed'
}

function reportCall (tool: Tool, request: ToolRequest, reply: FastifyReply): void {
  const call = request[kCall] as CallRecord
  const outcome = call.outcome ?? outcomeOfStatus(reply.statusCode)
  tool.runtime.stats.toolCall(tool.name, outcome)
  if (toolChannel.hasSubscribers) {
    toolChannel.publish({
      name: tool.name, sessionId: call.sessionId, outcome, statusCode: reply.statusCode, durationMs: reply.elapsedTime
    } satisfies OsharaToolMessage)
  }
}
