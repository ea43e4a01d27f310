import t from 'tap'
import { buildApp, logCapture, postToken } from './helpers/app.js'
import { API_KEY, startEmulator } from './helpers/emulator.js'

// SPEC section 9: one info line per session, a warn per retry, an error with the fix for 401/403/404,
// and never the token, the API key, metadata values or mcp_headers values.

const secrets = {
  email: 'ann.secret@example.com',
  userId: 'user-8c1f-secret',
  mcp: 'Bearer mcp-secret-value-123'
}

t.test('logs hold what an operator needs and no secret', async (t) => {
  const emulator = await startEmulator(t)
  const capture = logCapture()
  const app = await buildApp(t, emulator, {
    apiKey: API_KEY,
    metadata: () => ({ user_id: secrets.userId, email: secrets.email }),
    session: () => ({ mcp_headers: { authorization: secrets.mcp } })
  }, { logger: { level: 'info', stream: capture.stream } })

  emulator.fault({ status: 503 })
  const ok = await postToken(app)
  t.equal(ok.statusCode, 200)
  const token = ok.json().token as string

  emulator.fault({ status: 403 })
  t.equal((await postToken(app)).statusCode, 502)
  emulator.fault({ status: 404 })
  t.equal((await postToken(app)).statusCode, 502)
  emulator.fault({ status: 401 })
  t.equal((await postToken(app)).statusCode, 502)
  emulator.fault({ status: 500 })
  t.equal((await postToken(app)).statusCode, 502)

  const lines = capture.lines()
  const created = lines.filter((line) => line.msg === 'oshara: session created')
  t.equal(created.length, 1)
  t.match(created[0], { level: 30, session_id: ok.json().session_id, agent: 'support-bot', attempts: 2, durationMs: Number, reqId: String })
  const retries = lines.filter((line) => line.msg === 'oshara: retrying upstream call')
  t.equal(retries.length, 1)
  t.match(retries[0], { level: 40, upstreamStatus: 503, attempt: 1 })
  const refusals = lines.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('oshara: upstream refused'))
  t.same(refusals.map((line) => line.code), ['FST_OSHARA_ORIGIN_FORBIDDEN', 'FST_OSHARA_AGENT_NOT_FOUND', 'FST_OSHARA_UNAUTHORIZED'])
  for (const line of refusals) t.match(line, { level: 50, fix: String, upstreamStatus: Number, requestId: String })

  const text = capture.text()
  for (const [name, value] of Object.entries({ token, apiKey: API_KEY, ...secrets })) {
    t.notOk(text.includes(value), `the log does not hold the ${name}`)
  }
  t.ok(text.includes('support-bot'), 'sanity: the capture holds the log')
})
