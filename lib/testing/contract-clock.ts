import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { MaybePromise } from '../maybe-promise.js'

// Time for the store contracts: the caller's clock moved by `advance`, or real time polled with a deadline.

/** Longer than any case lasts: what is kept this long is never seen to expire. */
export const LONG_MS = 60_000
export const POLL_MS = 10
/** Rounding between the caller's clock and the store's (Redis counts whole milliseconds). */
export const CLOCK_SLACK_MS = 2
export const DEFAULT_EXPIRY_TIMEOUT_MS = 10_000

// Captured at load, so that fake timers installed later do not stop real-time waits.
const realNow = performance.now.bind(performance)

export type Advance = (ms: number) => MaybePromise<void>

/** Time as the cases see it: the caller's clock moved by `advance`, or real time. */
export class Clock {
  readonly #advance: Advance | undefined
  #moved = 0

  constructor (advance: Advance | undefined) {
    this.#advance = advance
  }

  get real (): boolean {
    return this.#advance === undefined
  }

  /** The rounding allowed between this clock and the store's: `CLOCK_SLACK_MS` in real time, none with the caller's clock. */
  get slackMs (): number {
    return this.real ? CLOCK_SLACK_MS : 0
  }

  now (): number {
    return this.#advance === undefined ? realNow() : this.#moved
  }

  /** Lets at least `ms` pass. */
  async pass (ms: number): Promise<void> {
    if (this.#advance === undefined) {
      await sleep(ms)
    } else {
      this.#moved += ms
      await this.#advance(ms)
    }
  }

  /** Lets time pass until `time` (none when it is past already). */
  async passUntil (time: number): Promise<void> {
    await this.pass(Math.max(0, time - this.now()))
  }

  /**
   * Whether, in real time, `ms` have passed since `since`: a machine that slow cannot tell what
   * lasts `ms` from what is already gone; that is no fault of the store.
   */
  passedInRealTime (since: number, ms: number): boolean {
    return this.real && this.now() - since >= ms
  }
}

/** What a case runs with. */
export interface Harness<Store> {
  readonly store: Store
  readonly clock: Clock
  readonly expiryTimeoutMs: number
}

export type Body<Store> = (harness: Harness<Store>) => Promise<void>

/**
 * With the caller's clock, moves it to 1 ms before `since + ms` and runs `check` there; in real
 * time, does nothing (the cases cannot stop at that moment).
 */
export async function checkJustBefore (clock: Clock, since: number, ms: number, check: () => Promise<void>): Promise<void> {
  if (clock.real) return
  await clock.passUntil(since + ms - 1)
  await check()
}

/**
 * Asks `done` every `POLL_MS` until it answers true, and fails with `message` once it has not by
 * `expiryTimeoutMs` after `due` (or after now, if `due` is past).
 */
export async function pollUntil (h: Harness<unknown>, due: number, done: () => Promise<boolean>, message: string): Promise<void> {
  const deadline = Math.max(h.clock.now(), due) + h.expiryTimeoutMs
  while (!(await done())) {
    if (h.clock.now() >= deadline) assert.fail(message)
    await h.clock.pass(POLL_MS)
  }
}

export interface ContractRunOptions<Store> {
  createStore: () => MaybePromise<Store>
  cleanup?: ((store: Store) => MaybePromise<void>) | undefined
  advance?: Advance | undefined
  expiryTimeoutMs?: number | undefined
}

/** The named cases, each run on a fresh store from `createStore` with a clock of its own, and cleaned up however it ends. */
export function contractCases<Store> (
  bodies: ReadonlyArray<readonly [string, Body<Store>]>,
  { createStore, cleanup, advance, expiryTimeoutMs = DEFAULT_EXPIRY_TIMEOUT_MS }: ContractRunOptions<Store>
): Array<{ readonly name: string, readonly run: () => Promise<void> }> {
  return bodies.map(([name, body]) => ({
    name,
    run: async () => {
      const store = await createStore()
      try {
        await body({ store, clock: new Clock(advance), expiryTimeoutMs })
      } finally {
        await cleanup?.(store)
      }
    }
  }))
}
