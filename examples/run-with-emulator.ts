/**
 * Shared by the examples when run directly: start the app against a fresh local Oshara
 * emulator, print how to try it, and stop cleanly on Ctrl-C. Not part of your app.
 */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
// In your app: import { createOsharaEmulator } from 'fastify-oshara-voice/emulator'
import { createOsharaEmulator } from '../lib/emulator/index.js'

export const EXAMPLE_ORIGIN = 'https://app.example.com'

/** True when `moduleUrl` (an example's `import.meta.url`) is the script node was started with. */
export function isMain (moduleUrl: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(moduleUrl)
}

export async function runWithEmulator (
  name: string,
  build: (options: { origin: string, baseUrl: string, logger: boolean }) => Promise<FastifyInstance>,
  hint: (url: string) => string
): Promise<void> {
  const emulator = await createOsharaEmulator({ characters: [{ slug: 'support-bot', allowed_origins: [EXAMPLE_ORIGIN] }] })
  const app = await build({ origin: EXAMPLE_ORIGIN, baseUrl: emulator.url, logger: true })
  app.addHook('onClose', () => emulator.close())
  const stop = (): void => { app.close().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    const url = await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
    console.log(`${name} example: ${url} (Oshara emulator at ${emulator.url})\n  try: ${hint(url)}`)
  } catch (error) {
    await app.close()
    throw error
  }
}
