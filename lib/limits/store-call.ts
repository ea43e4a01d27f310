/** Calls to a store that may hang (a down Redis can queue commands forever), bounded in time. */

const STORE_TIMEOUT = Symbol('store timeout')

/** `limits.storeTimeoutMs` by default; also what a store call without `limits` waits. */
export const DEFAULT_STORE_TIMEOUT_MS = 1000
/**
 * `pending`, a store's answer, failing after `timeoutMs` (a down Redis can queue commands
 * forever). Once the timeout has answered, the store's late answer goes to `onLate` and a late
 * failure is dropped: nobody waits for either any more. `timeoutMs` undefined: the in-process
 * stores cannot hang, and their answer is awaited as it is, with no timer.
 */
export function withTimeout<T> (pending: Promise<T>, timeoutMs: number | undefined, onLate?: (value: T) => void): Promise<T> {
  if (timeoutMs === undefined) return pending
  return new Promise<T>((resolve, reject) => {
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      reject(STORE_TIMEOUT)
    }, timeoutMs)
    Promise.resolve(pending).then((value) => {
      if (!timedOut) {
        clearTimeout(timer)
        resolve(value)
      } else {
        onLate?.(value)
      }
    }, (cause: unknown) => {
      if (!timedOut) {
        clearTimeout(timer)
        reject(cause)
      }
    })
  })
}

export function storeFailure (cause: unknown): Record<string, unknown> {
  return { storeError: cause === STORE_TIMEOUT ? 'timeout' : String(cause) }
}

/** What a failed store call says: `timeout`, or the error's message. */
export function storeErrorMessage (cause: unknown): string {
  if (cause === STORE_TIMEOUT) return 'timeout'
  return cause instanceof Error ? cause.message : String(cause)
}
