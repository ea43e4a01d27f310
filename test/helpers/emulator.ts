import { createServer } from 'node:net'
import type { Test } from 'tap'
import { createOsharaEmulator } from '../../lib/emulator.js'
import type { EmulatorOptions, OsharaEmulator } from '../../lib/emulator.js'
import { OsharaError } from '../../lib/errors.js'

export const ORIGIN = 'https://app.example.com'
export const API_KEY = 'sk_test_5ecr3t_k3y_value'

/** An emulator with one character, `support-bot`, allowing ORIGIN; closed at the end of `t`. */
export async function startEmulator (t: Test, options: Partial<EmulatorOptions> = {}): Promise<OsharaEmulator> {
  const emulator = await createOsharaEmulator({
    characters: [
      { slug: 'support-bot', allowed_origins: [ORIGIN], system_prompt: 'You are a helpful support agent.', greeting: 'Hi!' },
      { slug: 'sales-bot', allowed_origins: [ORIGIN], system_prompt: 'You sell.', greeting: 'Hello!' }
    ],
    apiKeys: [API_KEY],
    ...options
  })
  t.teardown(() => emulator.close())
  return emulator
}

/** A loopback port with nothing listening on it (connections are refused). */
export async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Collects log lines written through the client's `logger`. */
export function recordingLogger (): { info: (o: Record<string, unknown>, m: string) => void, warn: (o: Record<string, unknown>, m: string) => void, lines: Array<{ level: string, object: Record<string, unknown>, message: string }> } {
  const lines: Array<{ level: string, object: Record<string, unknown>, message: string }> = []
  return {
    lines,
    info: (object, message) => { lines.push({ level: 'info', object, message }) },
    warn: (object, message) => { lines.push({ level: 'warn', object, message }) }
  }
}

export function sessionRequests (emulator: OsharaEmulator): OsharaEmulator['requests'] {
  return emulator.requests.filter((request) => request.url.startsWith('/api/agents/agent-session'))
}

/** The `OsharaError` a call rejects with; fails the test if it resolves or rejects with anything else. */
export async function failure (promise: Promise<unknown>): Promise<OsharaError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof OsharaError) return error
    throw error
  }
  throw new Error('expected the call to fail')
}
