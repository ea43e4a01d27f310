import { once } from 'node:events'
import { failure } from '../errors.js'
import type { MaybePromise } from '../maybe-promise.js'

/** What `runWithDeadline` resolves to when the deadline passed first. */
export const TIMED_OUT = Symbol('tool deadline passed')

/**
 * Runs `run` with a signal that aborts after `timeoutMs` (its reason an `OsharaToolTimeoutError`).
 * Resolves to what `run` returned, or to `TIMED_OUT` as soon as the signal aborts, whatever `run`
 * does then; rejects with what `run` threw before that.
 */
export async function runWithDeadline<T> (run: (signal: AbortSignal) => MaybePromise<T>, timeoutMs: number): Promise<T | typeof TIMED_OUT> {
  const controller = new AbortController()
  const timer = setTimeout(() => { controller.abort(failure('FST_OSHARA_TOOL_TIMEOUT', 'signal-aborted', { words: { timeoutMs } })) }, timeoutMs)
  const expired = once(controller.signal, 'abort').then((): typeof TIMED_OUT => TIMED_OUT)
  try {
    const pending = Promise.resolve().then(() => run(controller.signal))
    // Past the deadline the reply is the 504: a late failure changes nothing.
    pending.catch(() => {})
    return await Promise.race([pending, expired])
  } finally {
    clearTimeout(timer)
  }
}
