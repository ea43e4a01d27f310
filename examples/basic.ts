/**
 * The smallest setup: `POST /voice-token` mints an Oshara session for one character.
 *
 *   node --import tsx examples/basic.ts
 *   curl -X POST http://127.0.0.1:3000/voice-token
 *
 * Run directly, it starts against a fresh local Oshara emulator. In your app, pass your site's
 * origin (it must be on the character's allowed_origins) and leave baseUrl out.
 */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
// In your app: import osharaVoice from 'fastify-oshara-voice'
import osharaVoice from '../lib/index.js'
// In your app: import { createOsharaEmulator } from 'fastify-oshara-voice/emulator'
import { createOsharaEmulator } from '../lib/emulator/index.js'

export interface BasicOptions {
  /** Your site's origin, as listed in the character's allowed_origins. */
  origin: string
  /** Default https://api.oshara.ai (the emulator's url in tests). */
  baseUrl?: string
  logger?: boolean
}

export async function build ({ origin, baseUrl, logger = false }: BasicOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  await app.register(osharaVoice, {
    origin,
    agent: 'support-bot',
    ...(baseUrl === undefined ? {} : { baseUrl })
  })
  return app
}

const runDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)

if (runDirectly) {
  const origin = 'https://app.example.com'
  const emulator = await createOsharaEmulator({ characters: [{ slug: 'support-bot', allowed_origins: [origin] }] })
  const app = await build({ origin, baseUrl: emulator.url, logger: true })
  app.addHook('onClose', () => emulator.close())
  const stop = (): void => { app.close().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    const url = await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
    console.log(`basic example: ${url} (Oshara emulator at ${emulator.url})\n  try: curl -X POST ${url}/voice-token`)
  } catch (error) {
    await app.close()
    throw error
  }
}
