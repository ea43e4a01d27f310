import type { EmulatorFault, EmulatorFaultTarget } from './emulator-types.js'
import { jsonReply, type Reply } from './reply.js'

// Enough JSON to look like the start of a session, then cut off.
const MALFORMED_BODY = '{"token": '
// `{"padding":""}`: the bytes an oversized body has around its padding.
const PADDING_OVERHEAD = 14

/** FIFO of faults, one entry per request it applies to; each request takes the first of its target. */
export class FaultQueue {
  #queue: EmulatorFault[] = []

  add (fault: EmulatorFault, times: number): void {
    for (let i = 0; i < times; i++) this.#queue.push(fault)
  }

  clear (): void {
    this.#queue = []
  }

  next (target: EmulatorFaultTarget): EmulatorFault | undefined {
    const index = this.#queue.findIndex((fault) => (fault.target ?? 'session') === target)
    return index === -1 ? undefined : this.#queue.splice(index, 1)[0]
  }
}

/** The answer a fault replaces the normal one with, or undefined when it leaves it alone. */
export function faultReply (fault: EmulatorFault): Reply | undefined {
  if (fault.status !== undefined) return statusReply(fault.status, fault)
  if (fault.malformed === true) return { status: 200, headers: { 'content-type': 'application/json' }, body: MALFORMED_BODY }
  if (fault.oversizedBytes !== undefined) {
    return jsonReply(200, { padding: 'x'.repeat(Math.max(0, fault.oversizedBytes - PADDING_OVERHEAD)) })
  }
  return undefined
}

function statusReply (status: number, fault: EmulatorFault): Reply {
  const body = fault.body ?? { detail: 'Injected fault' }
  if (typeof body === 'string') {
    return { status, headers: { 'content-type': 'text/plain; charset=utf-8', ...fault.headers }, body }
  }
  return jsonReply(status, body, fault.headers)
}
