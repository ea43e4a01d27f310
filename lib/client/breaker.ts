import { breakerChannel, type OsharaBreakerMessage } from '../observability/channels.js'

// Names, defaults and checks of these options: BREAKER_OPTIONS in client/options.ts.
export interface BreakerOptions {
  /** Consecutive failed calls (unreachable, 5xx, timeout) that open the circuit. Default 5. */
  failureThreshold?: number
  /** How long the circuit stays open before one call may probe. Default 10000. */
  cooldownMs?: number
}

/** `closed`: calls go through; `open`: they fail fast until the cooldown ends; `half-open`: the cooldown is over and the next call probes (or a probe is in flight). */
export type OsharaBreakerState = 'closed' | 'open' | 'half-open'

/** While a probe is in flight, other calls are told to come back after this long. */
const PROBE_WAIT_MS = 1000

/**
 * A consecutive-failure circuit breaker. Closed: every call goes through. Open: calls fail
 * fast until the cooldown ends. Then one call probes; its success closes the circuit, its
 * failure opens it for another cooldown.
 */
export class CircuitBreaker {
  readonly failureThreshold: number
  readonly cooldownMs: number
  private failures = 0
  private openUntil = 0
  private probing = false

  constructor (options: Required<BreakerOptions>) {
    this.failureThreshold = options.failureThreshold
    this.cooldownMs = options.cooldownMs
  }

  /** 0 when a call may go; otherwise milliseconds to wait. Admitting the probe marks it in flight. */
  admit (now: number): number {
    if (this.failures < this.failureThreshold) return 0
    if (now < this.openUntil) return this.openUntil - now
    if (this.probing) return PROBE_WAIT_MS
    this.probing = true
    return 0
  }

  /** The state at `now`. */
  state (now: number): OsharaBreakerState {
    if (this.failures < this.failureThreshold) return 'closed'
    return now < this.openUntil ? 'open' : 'half-open'
  }

  /** The upstream answered (any non-5xx status): the circuit closes. */
  recordSuccess (): void {
    const wasOpen = this.failures >= this.failureThreshold
    this.failures = 0
    this.probing = false
    if (wasOpen && breakerChannel.hasSubscribers) breakerChannel.publish({ state: 'closed' } satisfies OsharaBreakerMessage)
  }

  recordFailure (now: number): void {
    this.failures++
    // It opens on reaching the threshold, and again when a probe fails; failures of calls that were in flight when it opened change nothing.
    const opens = this.failures === this.failureThreshold || this.probing
    this.probing = false
    if (this.failures < this.failureThreshold) return
    this.openUntil = now + this.cooldownMs
    if (opens && breakerChannel.hasSubscribers) {
      breakerChannel.publish({ state: 'open', failures: this.failures, cooldownMs: this.cooldownMs } satisfies OsharaBreakerMessage)
    }
  }

  /** The call ended without telling anything about the upstream (aborted): a pending probe may be retried. */
  recordNeutral (): void {
    this.probing = false
  }
}
