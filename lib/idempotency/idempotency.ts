import { createHash, randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { sessionJson } from '../client/schemas.js'
import { failure } from '../errors.js'
import { MemorySessionStore } from '../limits/memory-store.js'
import { storeFailure, withTimeout } from '../limits/store-call.js'
import { publishStoreError } from '../observability/channels.js'
import type { IdempotencyBeginResult, IdempotencyStore } from './idempotency-store.js'

export interface IdempotencyConfig {
  readonly store: IdempotencyStore
  /** Longest a reply is replayed. */
  readonly ttlMs: number
  /** How long an in-flight mark outlives a process that died mid-request (the limiter's `pendingMs`). */
  readonly pendingMs: number
  /** `limits.onStoreError`: 'deny' unless the app serves without limits while its store is down. */
  readonly onStoreError: 'deny' | 'allow'
  readonly storeTimeoutMs: number
}

/** A key this attempt holds in flight: completed with its reply, or abandoned when it fails. */
export interface IdempotencyClaim {
  readonly id: string
  readonly attempt: string
}

/** What `begin` found: a reply to replay, or the claim to complete (undefined: the store failed and `onStoreError` is 'allow'). */
export type IdempotencyStart = { readonly replay: string } | { readonly claim: IdempotencyClaim | undefined }

/** Who the reply is for: the route's browser reply, or the decorator's session. Their replies differ, so do their entries. */
export type IdempotencyKind = 'route' | 'call'

const VISIBLE_ASCII = /^[\x21-\x7e]{1,255}$/

/** The client's `Idempotency-Key`: undefined when absent; a 400 unless 1 to 255 visible ASCII characters. */
export function readIdempotencyKey (value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !VISIBLE_ASCII.test(value)) {
    throw failure('FST_OSHARA_INVALID_IDEMPOTENCY_KEY', 'malformed')
  }
  return value
}

/** The request's content as the store compares it: a SHA-256 of its JSON (`FST_OSHARA_INVALID_SESSION` when it has none). */
function fingerprintOf (content: unknown): string {
  return createHash('sha256').update(sessionJson(content)).digest('base64url')
}

/**
 * Idempotent minting over an `IdempotencyStore`: `begin` before anything is counted or called,
 * then `complete` with the reply on success, or `abandon` on failure (failures are not replayed: a
 * repeat runs afresh, our own checks included). Replies are stored and replayed as given, never logged.
 */
export class IdempotentMinting {
  readonly config: IdempotencyConfig
  /** Undefined for the in-process store, which cannot hang. */
  readonly #timeoutMs: number | undefined

  constructor (config: IdempotencyConfig) {
    this.config = config
    this.#timeoutMs = config.store instanceof MemorySessionStore ? undefined : config.storeTimeoutMs
  }

  /**
   * Claims `idempotencyKey` within `scope` for a request with `content`. Resolves to the reply to
   * replay, or to the claim; rejects with `FST_OSHARA_IDEMPOTENCY_IN_PROGRESS` (409), `..._KEY_REUSED`
   * (422), or `FST_OSHARA_UNAVAILABLE` when the store failed and `onStoreError` is 'deny'.
   */
  async begin (kind: IdempotencyKind, scope: string, idempotencyKey: string, content: unknown, log: FastifyBaseLogger): Promise<IdempotencyStart> {
    const { store, pendingMs } = this.config
    // Lengths first, so that no scope and key pair spells another's id.
    const id = `${kind}:${scope.length}:${scope}:${idempotencyKey}`
    const attempt = randomUUID()
    // Outside the store's try: content JSON cannot carry is the caller's error, not the store's.
    const fingerprint = fingerprintOf(content)
    let result: IdempotencyBeginResult
    try {
      const pending = store.beginIdempotent({ key: id, fingerprint, attempt, pendingMs })
      // A claim granted after the timeout belongs to nobody: give it back at once (abandon() never rejects).
      const abandonLate = (late: IdempotencyBeginResult): void => { if (late.state === 'started') this.abandon({ id, attempt }, log) }
      result = await withTimeout(pending, this.#timeoutMs, abandonLate)
    } catch (cause) {
      publishStoreError('idempotency', 'begin', cause)
      if (this.config.onStoreError === 'allow') {
        log.warn(storeFailure(cause), 'oshara: idempotency store failed; serving without replays (onStoreError: allow)')
        return { claim: undefined }
      }
      log.error(storeFailure(cause), 'oshara: idempotency store failed; refusing the session (onStoreError: deny)')
      throw failure('FST_OSHARA_UNAVAILABLE', 'store-down', { cause })
    }
    if (result.state === 'started') return { claim: { id, attempt } }
    if (result.state === 'completed') return { replay: result.reply }
    if (result.state === 'in-flight') throw failure('FST_OSHARA_IDEMPOTENCY_IN_PROGRESS', 'in-flight')
    throw failure('FST_OSHARA_IDEMPOTENCY_KEY_REUSED', 'other-request')
  }

  /** Stores the reply of a claim, replayed for `ttlMs` but never past its token's lifetime. Never throws: a failure is logged. */
  async complete (claim: IdempotencyClaim, reply: string, expiresInSeconds: number, log: FastifyBaseLogger): Promise<void> {
    const ttlMs = Math.min(this.config.ttlMs, expiresInSeconds * 1000)
    try {
      await withTimeout(this.config.store.completeIdempotent(claim.id, claim.attempt, reply, ttlMs), this.#timeoutMs)
    } catch (cause) {
      publishStoreError('idempotency', 'complete', cause)
      log.warn(storeFailure(cause), 'oshara: idempotency store failed to keep a reply; a repeat mints again once its in-flight mark expires')
    }
  }

  /** Forgets a claim whose request failed, so that a repeat tries afresh. Never throws: a failure is logged. */
  async abandon (claim: IdempotencyClaim, log: FastifyBaseLogger): Promise<void> {
    try {
      await withTimeout(this.config.store.abandonIdempotent(claim.id, claim.attempt), this.#timeoutMs)
    } catch (cause) {
      publishStoreError('idempotency', 'abandon', cause)
      log.warn(storeFailure(cause), 'oshara: idempotency store failed to forget a failed request; a repeat gets 409 until its in-flight mark expires')
    }
  }
}
