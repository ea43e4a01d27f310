/** Calls to a store that may hang (a down Redis can queue commands forever), bounded in time. */

const STORE_TIMEOUT = Symbol('store timeout')
/**
 * Runs `operation` against the store, failing after `timeoutMs` (a down Redis can queue commands
 * forever). Once the timeout has answered, the store's late answer goes to `onLate` and a late
 * failure is dropped: nobody waits for either any more.
 */
export function withTimeout<T> (operation: () => Promise<T>, timeoutMs: number, onLate?: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const pending = Promise.resolve(operation())
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      reject(STORE_TIMEOUT)
    }, timeoutMs)
    pending.then((value) => {
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

/** The in-process store cannot hang: it is called directly, without a timer per operation. */
export async function direct<T> (operation: () => Promise<T>): Promise<T> {
  return await operation()
}
