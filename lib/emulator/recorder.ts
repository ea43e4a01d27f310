import type { RecordedRequest } from './emulator-types.js'

/** The recorded requests, and the `waitForRequest` calls waiting on them. */
export class RequestLog {
  readonly requests: RecordedRequest[] = []
  readonly #waiters = new Set<() => void>()

  add (request: RecordedRequest): void {
    this.requests.push(request)
    this.changed()
  }

  /** Call after any change to a recorded request: waiters re-check their predicate. */
  changed (): void {
    for (const check of this.#waiters) check()
  }

  clear (): void {
    this.requests.length = 0
  }

  waitFor (predicate: (request: RecordedRequest) => boolean, timeoutMs: number): Promise<RecordedRequest> {
    return new Promise((resolve, reject) => {
      const stop = (): void => {
        clearTimeout(timer)
        this.#waiters.delete(check)
      }
      const check = (): void => {
        const found = this.requests.find(predicate)
        if (found === undefined) return
        stop()
        resolve(found)
      }
      const timer = setTimeout(() => {
        stop()
        reject(new Error(`No matching request within ${timeoutMs} ms`))
      }, timeoutMs)
      timer.unref()
      this.#waiters.add(check)
      check()
    })
  }
}
