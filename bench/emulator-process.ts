// The Oshara emulator in its own process: `node --import tsx bench/emulator-process.ts`
// prints its URL on stdout, then answers the harness over IPC (stats, reset, close).
import { createOsharaEmulator } from '../lib/emulator/index.js'
import { AGENT, ORIGIN, serveParent } from './harness.js'

const emulator = await createOsharaEmulator({
  characters: [{ slug: AGENT, allowed_origins: [ORIGIN], system_prompt: 'You are a helpful support agent.', greeting: 'Hi! How can I help you today?' }],
  port: Number(process.env.EMULATOR_PORT ?? 0)
})

serveParent(emulator.url, {
  extra: () => ({ sessions: emulator.sessions.size, requests: emulator.requests.length }),
  // The emulator keeps every minted session and every request for its tests' assertions, and
  // has no option to stop: a long run empties both between measurements (see RESULTS.md).
  reset: () => {
    emulator.clearRequests()
    ;(emulator.sessions as Map<string, unknown>).clear()
  },
  close: () => emulator.close()
})
