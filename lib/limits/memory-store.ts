import { performance } from 'node:perf_hooks'
import type { AcquireResult, SessionStore, SlotRequest } from './store.js'

/** One reservation, pending until `sessionId` is set. */
interface Slot {
  readonly id: string
  readonly key: string
  expiresAt: number
  sessionId: string | undefined
  /** Position in the expiry heap, kept up to date by the heap. */
  heapIndex: number
}

/** Live slots ordered by expiry: a binary min-heap that can also remove and re-sort any slot in O(log n). */
class ExpiryHeap {
  readonly #slots: Slot[] = []

  first (): Slot | undefined {
    return this.#slots[0]
  }

  push (slot: Slot): void {
    this.#place(slot, this.#slots.length)
    this.#siftUp(slot)
  }

  remove (slot: Slot): void {
    const last = this.#slots.pop() as Slot
    if (last === slot) return
    this.#place(last, slot.heapIndex)
    this.resort(last)
  }

  /** Restores the order after `slot.expiresAt` changed. */
  resort (slot: Slot): void {
    this.#siftUp(slot)
    this.#siftDown(slot)
  }

  #siftUp (slot: Slot): void {
    let index = slot.heapIndex
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = this.#slots[parentIndex] as Slot
      if (parent.expiresAt <= slot.expiresAt) break
      this.#place(parent, index)
      index = parentIndex
    }
    this.#place(slot, index)
  }

  #siftDown (slot: Slot): void {
    let index = slot.heapIndex
    let child = this.#earlierChild(index)
    while (child !== undefined && child.expiresAt < slot.expiresAt) {
      const childIndex = child.heapIndex
      this.#place(child, index)
      index = childIndex
      child = this.#earlierChild(index)
    }
    this.#place(slot, index)
  }

  #earlierChild (index: number): Slot | undefined {
    const left = this.#slots[2 * index + 1]
    const right = this.#slots[2 * index + 2]
    return right !== undefined && right.expiresAt < (left as Slot).expiresAt ? right : left
  }

  #place (slot: Slot, index: number): void {
    this.#slots[index] = slot
    slot.heapIndex = index
  }
}

/**
 * The default `SessionStore`: slots in this process's memory, so limits hold per process
 * (use `RedisSessionStore` when several app instances share a limit).
 *
 * Layout: slots by id, by key (a small array, at most `concurrency` long) and by bound
 * session id, plus one min-heap of all slots ordered by expiry. Every call first drops the
 * slots that have expired (from the top of the heap), so no timer runs per slot, the global
 * count is the number of live slots, and nothing is kept for a freed or expired slot once
 * the store is next used.
 *
 * Cost per call, with `n` live slots and `c` the key's concurrency: `acquire` O(c + log n),
 * `bind` O(log n), `release` and `releaseSession` O(c + log n); each expired slot costs
 * O(c + log n) once, in whichever call drops it. Time is `performance.now()` (monotonic).
 */
export class MemorySessionStore implements SessionStore {
  readonly #slots = new Map<string, Slot>()
  readonly #slotsByKey = new Map<string, Slot[]>()
  readonly #slotsBySession = new Map<string, Slot>()
  readonly #expiry = new ExpiryHeap()
  #lastId = 0

  /** Live slots, pending and bound, across all keys. */
  get size (): number {
    this.#dropExpired()
    return this.#slots.size
  }

  async acquire ({ key, concurrency, global, pendingMs }: SlotRequest): Promise<AcquireResult> {
    const now = this.#dropExpired()
    const held = this.#slotsByKey.get(key)
    if ((held?.length ?? 0) >= concurrency) {
      return { ok: false, scope: 'key', retryAfterMs: msUntil(earliestExpiry(held), now) }
    }
    if (global !== undefined && this.#slots.size >= global) {
      return { ok: false, scope: 'global', retryAfterMs: msUntil(this.#expiry.first()?.expiresAt, now) }
    }
    const slot: Slot = { id: (++this.#lastId).toString(36), key, expiresAt: now + pendingMs, sessionId: undefined, heapIndex: 0 }
    this.#add(slot, held)
    return { ok: true, slotId: slot.id }
  }

  async bind (slotId: string, sessionId: string, holdMs: number): Promise<boolean> {
    const now = this.#dropExpired()
    const slot = this.#slots.get(slotId)
    if (slot === undefined) return false
    this.#unlinkSession(slot)
    slot.sessionId = sessionId
    this.#slotsBySession.set(sessionId, slot)
    slot.expiresAt = now + holdMs
    this.#expiry.resort(slot)
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

  /** Forgets every slot whose time is up; returns the time it compared with. */
  #dropExpired (): number {
    const now = performance.now()
    for (let slot = this.#expiry.first(); slot !== undefined && slot.expiresAt <= now; slot = this.#expiry.first()) {
      this.#forget(slot)
    }
    return now
  }

  #add (slot: Slot, held: Slot[] | undefined): void {
    this.#slots.set(slot.id, slot)
    if (held === undefined) this.#slotsByKey.set(slot.key, [slot])
    else held.push(slot)
    this.#expiry.push(slot)
  }

  #forget (slot: Slot): void {
    this.#slots.delete(slot.id)
    this.#expiry.remove(slot)
    this.#unlinkSession(slot)
    this.#removeFromKey(slot)
  }

  #removeFromKey (slot: Slot): void {
    const held = this.#slotsByKey.get(slot.key) as Slot[]
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

function earliestExpiry (slots: readonly Slot[] = []): number | undefined {
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
