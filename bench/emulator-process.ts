// The Oshara emulator in its own process: `node --import tsx bench/emulator-process.ts`
// prints its URL on stdout, then answers the harness over IPC (stats, reset, close).
//
// `record: false`: the emulator keeps no requests. It still keeps every minted session (billing
// lookups need them), so memory grows over a run; with EMULATOR_TRIM_MS set, this process
// empties them that often, so every variant meets the same emulator.
import { createOsharaEmulator } from '../lib/emulator/index.js'
import { AGENT, ORIGIN, serveParent } from './harness.js'

const emulator = await createOsharaEmulator({
  characters: [{ slug: AGENT, allowed_origins: [ORIGIN], system_prompt: 'You are a helpful support agent.', greeting: 'Hi! How can I help you today?' }],
  port: Number(process.env.EMULATOR_PORT ?? 0),
  record: false
})

const sessions = emulator.sessions as Map<string, unknown>
/** Most sessions stored at once since the last reset. */
let mostStored = 0

function trim (): void {
  mostStored = Math.max(mostStored, sessions.size)
  emulator.clearRequests()
  sessions.clear()
}

const trimMs = Number(process.env.EMULATOR_TRIM_MS ?? 0)
if (trimMs > 0) setInterval(trim, trimMs).unref()

serveParent(emulator.url, {
  extra: () => ({ sessions: sessions.size, requests: emulator.requests.length, mostStored: Math.max(mostStored, sessions.size) }),
  reset: () => {
    trim()
    mostStored = 0
  },
  close: () => emulator.close()
})
