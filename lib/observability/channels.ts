import { channel, tracingChannel, type TracingChannel } from 'node:diagnostics_channel'
import type { OsharaErrorCode } from '../failures.js'
import { storeErrorMessage } from '../limits/store-call.js'

/**
 * The plugin's `node:diagnostics_channel` channels, made once. Their names and message fields are
 * public API (README, "Observability"). A message is built only when its channel has subscribers:
 * every publisher checks `hasSubscribers` first, so a server with nothing subscribed builds nothing.
 * No message carries a token, the API key, a metadata value or an `mcp_headers` value; nor a
 * limiter or quota key (a user id, an email or an IP address: personal data).
 */

/**
 * The context of `oshara:session:create` (a tracing channel: `start`, `end`, `asyncStart`,
 * `asyncEnd`, `error`), one per `createSession` call. `agent` and `requestId` are set from the
 * start; `attempts` and `sessionId` (or `error`) when it ends. `result` is never set: the
 * session holds the token.
 */
export interface OsharaSessionCreateMessage {
  agent: string | undefined
  /** The call's `X-Request-Id` (the route's `request.id`). */
  requestId: string
  /** Upstream attempts made (0 when the call never reached the network). */
  attempts?: number
  sessionId?: string
  /** The `OsharaError` the call failed with (its `code` and `outcome` tell what happened). */
  error?: unknown
}

/** The context of `oshara:session:lookup` (a tracing channel), one per `getSession` call (session tracking, keys at their limit). */
export interface OsharaSessionLookupMessage {
  sessionId: string
  requestId: string
  attempts?: number
  /** Oshara reports the session finalized (the call is over). */
  finalized?: boolean
  error?: unknown
}

/** `oshara:retry`: an upstream attempt failed and another follows after `delayMs`. */
export interface OsharaRetryMessage {
  requestId: string
  /** The attempt that failed (1 for the first). */
  attempt: number
  code: OsharaErrorCode
  upstreamStatus: number | undefined
  delayMs: number
}

/** `oshara:breaker`: the circuit breaker opened (calls fail fast for `cooldownMs`) or closed again. */
export interface OsharaBreakerMessage {
  state: 'open' | 'closed'
  /** Consecutive failed calls (when it opened). */
  failures?: number
  cooldownMs?: number
}

/** `oshara:limit`: the concurrent-session limiter refused a session (429 `FST_OSHARA_SESSION_LIMIT`). */
export interface OsharaLimitMessage {
  /** Which limit: the key's `concurrency`, or `global`. The key itself is left out: it names a user. */
  scope: 'key' | 'global' | undefined
  retryAfterMs: number | undefined
  requestId: string
}

/** `oshara:store:error`: a limiter, quota or tracking store call failed or timed out. */
export interface OsharaStoreErrorMessage {
  store: 'limiter' | 'quota' | 'tracking' | 'idempotency'
  /**
   * The store call that failed: `acquire`, `bind`, `release`, `releaseSession`, `sessionState` (a tool call's session looked up) (limiter); `consume`,
   * `refund`, `record`, `usage` (quota); `track`, `claimDue`, `reclaim` (a key at its limit has its
   * sessions looked up), `update` (a looked-up session rescheduled or untracked) (tracking); `begin`,
   * `complete`, `abandon` (idempotency).
   */
  operation: string
  /** The error's message, or `timeout`. */
  message: string
}

/** `oshara:session:end`: a tracked session was found finalized (once per session, by the instance that found it). */
export interface OsharaSessionEndMessage {
  sessionId: string
  durationSeconds: number | undefined
  costUsd: number | undefined
}

/** `oshara:quota`: a quota refused a session (429 `FST_OSHARA_QUOTA_EXCEEDED`). */
export interface OsharaQuotaMessage {
  /** The budget used up. */
  budget: 'sessions' | 'minutes' | 'costUsd'
  /** The quota window, e.g. `d2026-11-25`. */
  windowId: string
  retryAfterMs: number
  requestId: string
}

/** How a tool call ended, in `oshara:tool` messages and `stats().tools`. */
export type OsharaToolOutcome = 'ok' | 'unauthorized' | 'forbidden' | 'ended' | 'invalid_arguments' | 'refused' | 'timeout' | 'failed' | 'unavailable'

/**
 * `oshara:tool`: a call of an agent tool ended (answered or refused). Never its arguments, the
 * session's metadata, the signature or the secret; the limiter key is left out too.
 */
export interface OsharaToolMessage {
  /** The tool's name (`fastify.oshara.tool(name, ...)`). */
  name: string
  /** `_session.session_id` as sent; undefined when the call was refused before its body was read (401) or had none. */
  sessionId: string | undefined
  outcome: OsharaToolOutcome
  /** The reply's status. */
  statusCode: number
  /** From the request to the reply, in milliseconds. */
  durationMs: number
}

/** @types/node 20 lacks `TracingChannel#hasSubscribers` (Node has it since 20.13). */
export type OsharaTracingChannel<Context extends object> = TracingChannel<unknown, Context> & { readonly hasSubscribers: boolean }

export const sessionCreateChannel = tracingChannel('oshara:session:create') as OsharaTracingChannel<OsharaSessionCreateMessage>
export const sessionLookupChannel = tracingChannel('oshara:session:lookup') as OsharaTracingChannel<OsharaSessionLookupMessage>
export const retryChannel = channel('oshara:retry')
export const breakerChannel = channel('oshara:breaker')
export const limitChannel = channel('oshara:limit')
export const storeErrorChannel = channel('oshara:store:error')
export const sessionEndChannel = channel('oshara:session:end')
export const quotaChannel = channel('oshara:quota')
export const toolChannel = channel('oshara:tool')

/**
 * Runs `run` as one operation of a tracing channel (which has subscribers). The context, not the
 * result, is what subscribers see: `run` fills it in; the channel's `result` stays unset.
 */
export async function traceOperation<T, Context extends object> (traced: OsharaTracingChannel<Context>, context: Context, run: () => Promise<T>): Promise<T> {
  let result: T | undefined
  await traced.tracePromise(async () => { result = await run() }, context)
  return result as T
}

/** Publishes a store failure, `cause` being what the store call rejected with (or its timeout). */
export function publishStoreError (store: OsharaStoreErrorMessage['store'], operation: string, cause: unknown): void {
  if (storeErrorChannel.hasSubscribers) storeErrorChannel.publish({ store, operation, message: storeErrorMessage(cause) } satisfies OsharaStoreErrorMessage)
}
