import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import osharaVoice, { type OsharaInvalidOptionsError, type OsharaVoiceOptions } from '../../lib/index.js'
import type { OsharaEmulator } from '../../lib/emulator.js'
import { ORIGIN } from './emulator.js'

/**
 * A Fastify app with the plugin against `emulator`; retries fast, closed at the end of `t`. The
 * startup check is off unless asked for (test/startup-check.test.ts covers it), so that tests
 * counting upstream requests count only their own.
 */
export async function buildApp (t: Test, emulator: OsharaEmulator, options: Partial<OsharaVoiceOptions> = {}, fastifyOptions: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(fastifyOptions)
  await app.register(osharaVoice, {
    origin: ORIGIN,
    agent: 'support-bot',
    baseUrl: emulator.url,
    retry: { minDelayMs: 1, maxDelayMs: 5 },
    checkOnReady: false,
    ...options
  } as OsharaVoiceOptions)
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** What registering the plugin with `options` fails with, the app closed; throws when it does not fail. */
export async function registerError (options: unknown): Promise<OsharaInvalidOptionsError> {
  const app = Fastify()
  try {
    await app.register(osharaVoice, options as OsharaVoiceOptions)
    await app.ready()
  } catch (error) {
    return error as OsharaInvalidOptionsError
  } finally {
    await app.close()
  }
  throw new Error('expected register to fail')
}

/** `registerError` for a public route of `support-bot` on ORIGIN, with `options` on top. */
export async function registerPublicError (options: Partial<OsharaVoiceOptions>): Promise<OsharaInvalidOptionsError> {
  return await registerError({ origin: ORIGIN, agent: 'support-bot', public: true, ...options })
}

/** Collects what pino writes, for asserting on log lines and on what they must not contain. */
export function logCapture (): { stream: { write: (line: string) => void }, lines: () => Array<Record<string, unknown>>, text: () => string } {
  const chunks: string[] = []
  return {
    stream: { write: (line: string) => { chunks.push(line) } },
    lines: () => chunks.map((line) => JSON.parse(line) as Record<string, unknown>),
    text: () => chunks.join('')
  }
}

export function postToken (app: FastifyInstance, payload?: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/voice-token',
    ...(payload === undefined ? {} : { payload: payload as string }),
    headers: payload === undefined ? headers : { 'content-type': 'application/json', ...headers }
  })
}
