import { performance } from 'node:perf_hooks'
import type { IdempotencyBeginRequest, IdempotencyBeginResult, IdempotencyStore } from './idempotency-store.js'

interface Entry {
  readonly fingerprint: string
  readonly attempt: string
  reply: string | undefined
  expiresAt: number
}

/**
 * `IdempotencyStore` in this process's memory, for `MemorySessionStore`. Entries in one map, in the
 * order they were last written; each call first drops expired entries from the oldest on, stopping
 * at the first live one. So no timer runs per entry, an expired entry is never answered (each is
 * checked when read), and one is forgotten at the latest once every entry written before it has
 * expired too. O(1) per call, plus O(1) per expired entry dropped. Time is `performance.now()`.
 */
export class MemoryIdempotentReplies implements IdempotencyStore {
  readonly #entries = new Map<string, Entry>()

  /** Entries kept, live or not yet dropped. */
  get size (): number {
    this.#dropExpired(performance.now())
    return this.#entries.size
  }

  async beginIdempotent ({ key, fingerprint, attempt, pendingMs }: IdempotencyBeginRequest): Promise<IdempotencyBeginResult> {
    const now = performance.now()
    const entry = this.#live(key, now)
    if (entry === undefined) {
      this.#write(key, { fingerprint, attempt, reply: undefined, expiresAt: now + pendingMs })
      return { state: 'started' }
    }
    if (entry.fingerprint !== fingerprint) return { state: 'mismatch' }
    return entry.reply === undefined ? { state: 'in-flight' } : { state: 'completed', reply: entry.reply }
  }

  async completeIdempotent (key: string, attempt: string, reply: string, ttlMs: number): Promise<boolean> {
    const now = performance.now()
    const entry = this.#live(key, now)
    if (entry?.attempt !== attempt || entry.reply !== undefined) return false
    entry.reply = reply
    entry.expiresAt = now + ttlMs
    this.#write(key, entry)
    return true
  }

  async abandonIdempotent (key: string, attempt: string): Promise<boolean> {
    const entry = this.#live(key, performance.now())
    if (entry?.attempt !== attempt || entry.reply !== undefined) return false
    this.#entries.delete(key)
    return true
  }

  /** The entry of `key` unless it has expired (an expired one is dropped). */
  #live (key: string, now: number): Entry | undefined {
    this.#dropExpired(now)
    const entry = this.#entries.get(key)
    if (entry === undefined || entry.expiresAt > now) return entry
    this.#entries.delete(key)
    return undefined
  }

  /** Writes the entry as the newest. */
  #write (key: string, entry: Entry): void {
    this.#entries.delete(key)
    this.#entries.set(key, entry)
  }

  #dropExpired (now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt > now) return
      this.#entries.delete(key)
    }
  }
}
