/**
 * Shared by the examples when run directly: start the app against a fresh local Oshara
 * emulator, print how to try it, and stop cleanly on Ctrl-C. A start that fails (a port in use,
 * no Redis) prints what to do and exits non-zero. Not part of your app.
 */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
// In your app: import { createOsharaEmulator } from 'fastify-oshara-voice/emulator'
import { createOsharaEmulator } from '../lib/emulator.js'

export const EXAMPLE_ORIGIN = 'https://app.example.com'

/** True when `moduleUrl` (an example's `import.meta.url`) is the script node was started with. */
export function isMain (moduleUrl: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(moduleUrl)
}

/** How to run example `name` again, e.g. `node --import tsx examples/basic.ts`. */
function command (name: string): string {
  return `node --import tsx examples/${name}.ts`
}

/** PORT as a port number (default 3000), or an error saying what PORT takes. */
export function portFromEnv (name: string): number {
  const value = process.env.PORT
  if (value === undefined || value === '') return 3000
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT must be a port number from 0 to 65535 (got ${JSON.stringify(value)}), e.g. PORT=3001 ${command(name)}`)
  }
  return port
}

export interface ListenOptions {
  /** The example's file name without `.ts`, for the command in the message. */
  name: string
  port: number
  host: string
  /** The PORT to suggest when the port is taken. Default the next port. */
  suggestedPort?: number
}

/**
 * `app.listen`; a port another process holds becomes an error that says so and names the
 * variable that picks another (PORT), as the demo does.
 */
export async function listenOn (app: FastifyInstance, { name, port, host, suggestedPort }: ListenOptions): Promise<string> {
  try {
    return await app.listen({ port, host })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
    const other = suggestedPort ?? (port >= 65535 ? 3001 : port + 1)
    throw new Error(
      `port ${port} on ${host} is already in use (is another example or app running there?). ` +
      `Pick another port with PORT, e.g. PORT=${other} ${command(name)}`, { cause: error })
  }
}

/**
 * Runs an example's start; if it throws, prints `<name> example did not start: <why>` on stderr
 * and sets a non-zero exit code (everything the start opened is closed by then).
 */
export async function startExample (name: string, start: () => Promise<void>): Promise<void> {
  try {
    await start()
  } catch (error) {
    console.error(`${name} example did not start: ${(error as Error).message}`)
    process.exitCode = 1
  }
}

/** Stops on Ctrl-C (or SIGTERM) by calling `close`, then exits. */
export function closeOnSignal (close: () => Promise<void>): void {
  const stop = (): void => { close().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

export async function runWithEmulator (
  name: string,
  build: (options: { origin: string, baseUrl: string, logger: boolean }) => Promise<FastifyInstance>,
  hint: (url: string) => string
): Promise<void> {
  await startExample(name, async () => {
    const port = portFromEnv(name)
    const emulator = await createOsharaEmulator({ characters: [{ slug: 'support-bot', allowed_origins: [EXAMPLE_ORIGIN] }] })
    let app: FastifyInstance
    try {
      app = await build({ origin: EXAMPLE_ORIGIN, baseUrl: emulator.url, logger: true })
    } catch (error) {
      await emulator.close()
      throw error
    }
    app.addHook('onClose', () => emulator.close())
    try {
      const url = await listenOn(app, { name, port, host: process.env.HOST ?? '127.0.0.1' })
      closeOnSignal(() => app.close())
      console.log(`${name} example: ${url} (Oshara emulator at ${emulator.url})\n  try: ${hint(url)}`)
    } catch (error) {
      await app.close()
      throw error
    }
  })
}
