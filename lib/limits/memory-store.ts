import { performance } from 'node:perf_hooks'
import { MemoryIdempotentReplies } from '../idempotency/memory-replies.js'
import type { IdempotencyBeginRequest, IdempotencyBeginResult, IdempotencyStore } from '../idempotency/idempotency-store.js'
import type { AcquireResult, ClaimRequest, ClaimResult, RescheduleRequest, SessionState, SessionStore, SlotRequest, TrackedSession, TrackingStore, TrackRequest } from './store.js'

/** What the expiry heap orders: anything with a time, and a slot in the heap for it. */
interface Expiring {
  expiresAt: number
  /** Position in the expiry heap, kept up to date by the heap. */
  heapIndex: number
}

/** One reservation, pending until `sessionId` is set. */
interface Slot extends Expiring {
  readonly id: string
  readonly key: string
  sessionId: string | undefined
}

/** One tracked session; `expiresAt` is when it is due: its first check, its reschedule or the end of its lease. */
interface Entry extends Expiring {
  readonly sessionId: string
  readonly key: string | undefined
  readonly quotaKey: string | undefined
  readonly trackedAt: number
  checks: number
  ended: boolean
  deliveries: number
  /** The tracker that claimed it last: it may reschedule or untrack it until another one claims it. */
  owner: string | undefined
  /** Claimed and not rescheduled since: `expiresAt` is when the lease ends. */
  leased: boolean
}

/** Items ordered by `expiresAt`: a binary min-heap that can also remove and re-sort any item in O(log n). */
class ExpiryHeap<Item extends Expiring> {
  readonly #items: Item[] = []

  first (): Item | undefined {
    return this.#items[0]
  }

  push (item: Item): void {
    this.#place(item, this.#items.length)
    this.#siftUp(item)
  }

  remove (item: Item): void {
    const last = this.#items.pop() as Item
    if (last === item) return
    this.#place(last, item.heapIndex)
    this.resort(last)
  }

  /** Restores the order after `item.expiresAt` changed. */
  resort (item: Item): void {
    this.#siftUp(item)
    this.#siftDown(item)
  }

  #siftUp (item: Item): void {
    let index = item.heapIndex
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = this.#items[parentIndex] as Item
      if (parent.expiresAt <= item.expiresAt) break
      this.#place(parent, index)
      index = parentIndex
    }
    this.#place(item, index)
  }

  #siftDown (item: Item): void {
    let index = item.heapIndex
    let child = this.#earlierChild(index)
    while (child !== undefined && child.expiresAt < item.expiresAt) {
      const childIndex = child.heapIndex
      this.#place(child, index)
      index = childIndex
      child = this.#earlierChild(index)
    }
    this.#place(item, index)
  }

  #earlierChild (index: number): Item | undefined {
    const left = this.#items[2 * index + 1]
    const right = this.#items[2 * index + 2]
    return right !== undefined && right.expiresAt < (left as Item).expiresAt ? right : left
  }

  #place (item: Item, index: number): void {
    this.#items[index] = item
    item.heapIndex = index
  }
}

/**
 * The default `SessionStore`: slots in this process's memory, so limits hold per process
 * (use `RedisSessionStore` when several app instances share a limit). It also backs session
 * tracking (`TrackingStore`), for this process's trackers, and idempotent minting
 * (`IdempotencyStore`, kept by `MemoryIdempotentReplies`).
 *
 * Layout: slots by id, by key (the slot itself, or a small array, at most `concurrency` long,
 * when the key holds several: one object less to keep per user in the common case) and by bound
 * session id, plus one min-heap of all slots ordered by expiry. Every call first drops the
 * slots that have expired (from the top of the heap), so no timer runs per slot, the global
 * count is the number of live slots, and nothing is kept for a freed or expired slot once
 * the store is next used. Tracked sessions: entries by session id, plus a second min-heap of
 * them ordered by when they are due; an entry lives until it is untracked. Which tracked
 * sessions a key holds is read from the key's slots, so a freed slot needs no other update.
 *
 * Cost per call, with `n` live slots, `c` the key's concurrency and `m` tracked sessions:
 * `acquire` O(c + log n), `bind` O(log n) (and O(log m) with `track`), `release` and
 * `releaseSession` O(c + log n); each expired slot costs O(c + log n) once, in whichever call
 * drops it. `track`, `reschedule`, `untrack` and `markEnded` O(log m) (plus the slot they
 * free), `claimDue` O(k log m) for `k` claimed, `sessionsOf` O(c). Time is
 * `performance.now()` (monotonic).
 */
export class MemorySessionStore implements SessionStore, TrackingStore, IdempotencyStore {
  readonly #slots = new Map<string, Slot>()
  /** A key's one slot, or its slots when it holds several: most keys hold one, and need no array. */
  readonly #slotsByKey = new Map<string, Slot | Slot[]>()
  readonly #slotsBySession = new Map<string, Slot>()
  readonly #expiry = new ExpiryHeap<Slot>()
  readonly #entries = new Map<string, Entry>()
  readonly #due = new ExpiryHeap<Entry>()
  readonly #replies = new MemoryIdempotentReplies()
  #lastId = 0

  /** Live slots, pending and bound, across all keys. */
  get size (): number {
    this.#dropExpired()
    return this.#slots.size
  }

  async acquire ({ key, concurrency, global, pendingMs }: SlotRequest): Promise<AcquireResult> {
    const now = this.#dropExpired()
    const held = this.#slotsByKey.get(key)
    if (countOf(held) >= concurrency) {
      return { ok: false, scope: 'key', retryAfterMs: msUntil(earliestExpiry(listOf(held)), now) }
    }
    if (global !== undefined && this.#slots.size >= global) {
      return { ok: false, scope: 'global', retryAfterMs: msUntil(this.#expiry.first()?.expiresAt, now) }
    }
    const slot: Slot = { id: (++this.#lastId).toString(36), key, expiresAt: now + pendingMs, sessionId: undefined, heapIndex: 0 }
    this.#add(slot, held)
    return { ok: true, slotId: slot.id }
  }

  async bind (slotId: string, sessionId: string, holdMs: number, track?: TrackRequest): Promise<boolean> {
    const now = this.#dropExpired()
    const slot = this.#slots.get(slotId)
    if (slot === undefined) return false
    this.#unlinkSession(slot)
    slot.sessionId = sessionId
    this.#slotsBySession.set(sessionId, slot)
    slot.expiresAt = now + holdMs
    this.#expiry.resort(slot)
    if (track !== undefined) this.#startTracking(sessionId, slot.key, track, now)
    return true
  }

  async release (slotId: string): Promise<void> {
    this.#dropExpired()
    const slot = this.#slots.get(slotId)
    if (slot !== undefined) this.#forget(slot)
  }

  async releaseSession (sessionId: string, key?: string): Promise<boolean> {
    this.#dropExpired()
    const slot = this.#slotsBySession.get(sessionId)
    if (slot === undefined || (key !== undefined && slot.key !== key)) return false
    this.#forget(slot)
    return true
  }

  async sessionState (sessionId: string): Promise<SessionState | undefined> {
    this.#dropExpired()
    const slot = this.#slotsBySession.get(sessionId)
    const entry = this.#entries.get(sessionId)
    if (slot !== undefined) return { key: slot.key, ended: false }
    return entry === undefined ? undefined : { key: entry.key, ended: entry.ended }
  }

  async track (sessionId: string, request: TrackRequest): Promise<void> {
    this.#startTracking(sessionId, request.key, request, this.#dropExpired())
  }

  async claimDue ({ owner, leaseMs, limit }: ClaimRequest): Promise<ClaimResult> {
    const now = this.#dropExpired()
    // Taken out of the heap first, so that a lease of 0 ms cannot claim an entry twice.
    const claimed: Entry[] = []
    for (let entry = this.#due.first(); entry !== undefined && entry.expiresAt <= now && claimed.length < limit; entry = this.#due.first()) {
      this.#due.remove(entry)
      claimed.push(entry)
    }
    const next = this.#due.first()
    for (const entry of claimed) {
      entry.owner = owner
      entry.leased = true
      entry.expiresAt = now + leaseMs
      this.#due.push(entry)
    }
    return {
      sessions: claimed.map((entry) => view(entry, now)),
      nextDueMs: next === undefined ? undefined : Math.max(0, msUntil(next.expiresAt, now))
    }
  }

  async reschedule (sessionId: string, owner: string, { delayMs, checks, ended, deliveries }: RescheduleRequest): Promise<boolean> {
    const now = this.#dropExpired()
    const entry = this.#entries.get(sessionId)
    if (entry === undefined || entry.owner !== owner) return false
    entry.leased = false
    this.#setDue(entry, now + delayMs)
    if (checks !== undefined) entry.checks = checks
    if (deliveries !== undefined) entry.deliveries = deliveries
    if (ended === true) this.#end(entry)
    return true
  }

  async untrack (sessionId: string, owner?: string): Promise<boolean> {
    this.#dropExpired()
    const entry = this.#entries.get(sessionId)
    if (entry === undefined || (owner !== undefined && entry.owner !== owner)) return false
    this.#entries.delete(sessionId)
    this.#due.remove(entry)
    this.#freeSlotOf(sessionId)
    return true
  }

  async markEnded (sessionId: string): Promise<boolean> {
    const now = this.#dropExpired()
    const entry = this.#entries.get(sessionId)
    if (entry === undefined) return false
    // An ended entry is left as it is: its delivery is under way or scheduled. A leased one stays due
    // when its lease ends: its owner is looking it up and comes back to it.
    if (entry.ended) return true
    this.#end(entry)
    if (!entry.leased && entry.expiresAt > now) this.#setDue(entry, now)
    return true
  }

  async sessionsOf (key: string): Promise<string[]> {
    this.#dropExpired()
    const sessionIds: string[] = []
    for (const slot of listOf(this.#slotsByKey.get(key))) {
      const { sessionId } = slot
      if (sessionId !== undefined && this.#slotsBySession.get(sessionId) === slot && this.#entries.has(sessionId)) sessionIds.push(sessionId)
    }
    return sessionIds
  }

  async beginIdempotent (request: IdempotencyBeginRequest): Promise<IdempotencyBeginResult> {
    return await this.#replies.beginIdempotent(request)
  }

  async completeIdempotent (key: string, attempt: string, reply: string, ttlMs: number): Promise<boolean> {
    return await this.#replies.completeIdempotent(key, attempt, reply, ttlMs)
  }

  async abandonIdempotent (key: string, attempt: string): Promise<boolean> {
    return await this.#replies.abandonIdempotent(key, attempt)
  }

  /** Writes a fresh entry for the session, replacing one it had. */
  #startTracking (sessionId: string, key: string | undefined, { firstCheckMs, quotaKey }: TrackRequest, now: number): void {
    const previous = this.#entries.get(sessionId)
    if (previous !== undefined) this.#due.remove(previous)
    const entry: Entry = { sessionId, key, quotaKey, trackedAt: now, checks: 0, ended: false, deliveries: 0, owner: undefined, leased: false, expiresAt: now + firstCheckMs, heapIndex: 0 }
    this.#entries.set(sessionId, entry)
    this.#due.push(entry)
  }

  #setDue (entry: Entry, dueAt: number): void {
    entry.expiresAt = dueAt
    this.#due.resort(entry)
  }

  #end (entry: Entry): void {
    entry.ended = true
    this.#freeSlotOf(entry.sessionId)
  }

  #freeSlotOf (sessionId: string): void {
    const slot = this.#slotsBySession.get(sessionId)
    if (slot !== undefined) this.#forget(slot)
  }

  /** Forgets every slot whose time is up; returns the time it compared with. */
  #dropExpired (): number {
    const now = performance.now()
    for (let slot = this.#expiry.first(); slot !== undefined && slot.expiresAt <= now; slot = this.#expiry.first()) {
      this.#forget(slot)
    }
    return now
  }

  #add (slot: Slot, held: Slot | Slot[] | undefined): void {
    this.#slots.set(slot.id, slot)
    if (held === undefined) this.#slotsByKey.set(slot.key, slot)
    else if (Array.isArray(held)) held.push(slot)
    else this.#slotsByKey.set(slot.key, [held, slot])
    this.#expiry.push(slot)
  }

  #forget (slot: Slot): void {
    this.#slots.delete(slot.id)
    this.#expiry.remove(slot)
    this.#unlinkSession(slot)
    this.#removeFromKey(slot)
  }

  #removeFromKey (slot: Slot): void {
    const held = this.#slotsByKey.get(slot.key) as Slot | Slot[]
    if (!Array.isArray(held)) {
      this.#slotsByKey.delete(slot.key)
      return
    }
    const last = held.pop() as Slot
    if (last !== slot) held[held.indexOf(slot)] = last
    if (held.length === 0) this.#slotsByKey.delete(slot.key)
  }

  /** Drops the session's mapping, unless a later `bind` gave that session id to another slot. */
  #unlinkSession (slot: Slot): void {
    if (slot.sessionId !== undefined && this.#slotsBySession.get(slot.sessionId) === slot) {
      this.#slotsBySession.delete(slot.sessionId)
    }
  }
}

function view (entry: Entry, now: number): TrackedSession {
  const { sessionId, key, quotaKey, checks, ended, deliveries } = entry
  return { sessionId, key, quotaKey, ageMs: now - entry.trackedAt, checks, ended, deliveries }
}

function countOf (held: Slot | Slot[] | undefined): number {
  return held === undefined ? 0 : Array.isArray(held) ? held.length : 1
}

function listOf (held: Slot | Slot[] | undefined): readonly Slot[] {
  return held === undefined ? [] : Array.isArray(held) ? held : [held]
}

function earliestExpiry (slots: readonly Slot[]): number | undefined {
  let earliest: number | undefined
  for (const slot of slots) {
    if (earliest === undefined || slot.expiresAt < earliest) earliest = slot.expiresAt
  }
  return earliest
}

/** Whole milliseconds until `expiresAt`; 0 when the scope holds no slot (a limit of 0). */
function msUntil (expiresAt: number | undefined, now: number): number {
  return expiresAt === undefined ? 0 : Math.ceil(expiresAt - now)
}
