import t from 'tap'
import { buildApp, postToken } from './helpers/app.js'
import { sessionRequests, startEmulator } from './helpers/emulator.js'

// Cross-site minting: a page on another site may not mint or release sessions on the app's plan.

t.test('cross-site minting is refused: Fetch Metadata first, then Origin; no upstream call', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  const refused: Array<Record<string, string>> = [
    { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'cross-site' },
    { origin: 'https://evil.example' },
    { origin: 'null' },
    { origin: 'https://localhost' }
  ]
  for (const headers of refused) {
    const response = await postToken(app, undefined, headers)
    t.equal(response.statusCode, 403, JSON.stringify(headers))
    t.same(response.json(), {
      statusCode: 403, code: 'FST_OSHARA_ORIGIN_NOT_ALLOWED', error: 'Forbidden', message: 'Cross-site requests are not allowed.'
    })
  }
  t.equal(sessionRequests(emulator).length, 0, 'nothing reached Oshara')
})

t.test('same-origin, same-site, user-initiated and header-less requests pass', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator)
  const allowed: Array<Record<string, string>> = [
    {},
    { 'sec-fetch-site': 'same-origin', origin: 'http://localhost' },
    { 'sec-fetch-site': 'same-site', origin: 'https://www.example.com' },
    { 'sec-fetch-site': 'none' },
    { origin: 'http://localhost' },
    { origin: 'http://localhost:80' },
    { origin: 'http://LOCALHOST' }
  ]
  for (const headers of allowed) t.equal((await postToken(app, undefined, headers)).statusCode, 200, JSON.stringify(headers))
})

t.test('allowedOrigins admits a frontend on another site, and only that one', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { allowedOrigins: ['https://partner.example', 'http://127.0.0.1:5173'] })
  t.equal((await postToken(app, undefined, { origin: 'https://partner.example', 'sec-fetch-site': 'cross-site' })).statusCode, 200)
  t.equal((await postToken(app, undefined, { origin: 'http://127.0.0.1:5173' })).statusCode, 200)
  t.equal((await postToken(app, undefined, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' })).statusCode, 403)
})

t.test('cross-site release is refused too: the slot stays held', async (t) => {
  const emulator = await startEmulator(t)
  const app = await buildApp(t, emulator, { limits: { concurrency: 1, key: () => 'user-1' } })
  const { session_id: sessionId } = (await postToken(app)).json()
  const refused = await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId as string}`, headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } })
  t.equal(refused.statusCode, 403)
  t.equal(refused.json().code, 'FST_OSHARA_ORIGIN_NOT_ALLOWED')
  t.equal((await postToken(app)).statusCode, 429, 'still held')
  t.equal((await app.inject({ method: 'DELETE', url: `/voice-token/${sessionId as string}`, headers: { 'sec-fetch-site': 'same-origin' } })).statusCode, 204)
})
