/**
 * The smallest setup: `POST /voice-token` mints an Oshara session for one character.
 *
 *   node --import tsx examples/basic.ts
 *   curl -X POST http://127.0.0.1:3000/voice-token
 *
 * Run directly, it starts against a fresh local Oshara emulator. In your app, pass your site's
 * origin (it must be on the character's allowed_origins) and leave baseUrl out.
 */
import Fastify, { type FastifyInstance } from 'fastify'
// In your app: import osharaVoice from 'fastify-oshara-voice'
import osharaVoice from '../lib/index.js'
import { isMain, runWithEmulator } from './run-with-emulator.js'

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

if (isMain(import.meta.url)) await runWithEmulator('basic', build, (url) => `curl -X POST ${url}/voice-token`)
