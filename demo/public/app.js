// The demo page: get a voice token from our own server, show it, join the LiveKit room.
// Plain ES module, no build. livekit-client is served by the demo server from node_modules.
//
// We call POST /voice-token with plain fetch rather than livekit-client's
// TokenSource.endpoint('/voice-token') (which the route also understands), because the page
// needs the session_id to release the slot and the status and Retry-After of a 429, and a
// TokenSource keeps neither. (A TokenSource also caches its token until it expires: for a new
// call after hanging up, call tokenSource.fetch(options, true) or make a new one.)
import { ConnectionErrorReason, Room, RoomEvent } from './vendor/livekit-client.esm.mjs'

const TOKEN_PATH = '/voice-token'
const RECENT_PATH = '/demo/recent-calls'
const USAGE_PATH = '/demo/usage'
/** How often the Recent calls panel and the voice minutes ask the server while the page is visible. */
const RECENT_POLL_MS = 2000

const byId = (id) => document.getElementById(id)
const ui = {
  agent: byId('agent'),
  user: byId('user'),
  upstream: byId('upstream'),
  start: byId('start'),
  end: byId('end'),
  status: byId('status'),
  error: byId('error'),
  detail: byId('detail'),
  sessionId: byId('session-id'),
  room: byId('room'),
  identity: byId('identity'),
  expires: byId('expires'),
  livekitUrl: byId('livekit-url'),
  connection: byId('connection'),
  connectionText: byId('connection-text'),
  controls: byId('controls'),
  agentHangup: byId('agent-hangup'),
  crashTab: byId('crash-tab'),
  lookupOrder: byId('lookup-order'),
  forgedCall: byId('forged-call'),
  toolResult: byId('tool-result'),
  recentNote: byId('recent-note'),
  recentTable: byId('recent-calls'),
  recentRows: byId('recent-rows'),
  minutesText: byId('minutes-text'),
  minutesMeter: byId('minutes-meter'),
  minutesNote: byId('minutes-note')
}

/** What /api/demo told us: the (fake) user and which Oshara mints the sessions. */
let demo = { upstream: 'emulator' }
/** The call in progress: { sessionId, room, connected }, or null. */
let call = null
/**
 * Set while the server says the user's voice minutes are used up: { since, until } (epoch ms).
 * Start call stays disabled until `until` (from Retry-After), or until the minutes line shows
 * minutes left again (a new day, a restarted server).
 */
let minutesUsedUp = null
/** True while the server's daily budget of voice minutes is 0 (DEMO_MINUTES=0): Start call stays off. */
let noMinutesBudget = false

/** Start call, unless the voice minutes are used up or there are none to use. */
function allowStart () {
  ui.start.disabled = minutesUsedUp !== null || noMinutesBudget
}

function setStatus (text, tone = '') {
  ui.status.textContent = text
  ui.status.dataset.tone = tone
}

function setError (text) {
  ui.error.textContent = text ?? ''
  ui.error.hidden = !text
}

/** Technical detail under the status, in small print (for developers). */
function setDetail (text) {
  ui.detail.textContent = text ?? ''
  ui.detail.hidden = !text
}

function setField (element, text) {
  element.textContent = text || 'none yet'
  element.classList.toggle('empty', !text)
}

/** The fields that describe one session: shown while it lasts, cleared when it ends. */
const SESSION_FIELDS = [ui.sessionId, ui.room, ui.identity, ui.expires, ui.livekitUrl]

function clearSessionFields () {
  for (const element of SESSION_FIELDS) setField(element, '')
}

const STATE_WORDS = {
  idle: 'not connected',
  connecting: 'connecting…',
  connected: 'connected',
  reconnecting: 'reconnecting…',
  signalReconnecting: 'reconnecting…',
  disconnected: 'disconnected',
  failed: 'could not connect',
  ended: 'call ended'
}

/** End call, and with the emulator its two buttons: usable while a call is in progress. */
function setCallButtons (inCall) {
  ui.end.disabled = !inCall
  ui.agentHangup.disabled = !inCall
  ui.crashTab.disabled = !inCall
  ui.lookupOrder.disabled = !inCall
}

function setConnection (state) {
  ui.connection.dataset.state = state === 'signalReconnecting' ? 'reconnecting' : state
  ui.connectionText.textContent = STATE_WORDS[state] ?? state
}

/** The claims of a JWT (base64url JSON payload); the signature is the media server's business. */
function decodeJwtPayload (token) {
  const part = token.split('.')[1] ?? ''
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=')
  const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0))
  return JSON.parse(new TextDecoder().decode(bytes))
}

function describeExpiry (exp) {
  if (typeof exp !== 'number') return ''
  const minutes = Math.round((exp * 1000 - Date.now()) / 60000)
  const at = new Date(exp * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
  return `${at} (in ${minutes} min)`
}

/** 5 h 12 min, 3 min, less than a minute. */
function describeWait (seconds) {
  const minutes = Math.ceil(seconds / 60)
  if (seconds < 60) return 'less than a minute'
  if (minutes < 60) return `${minutes} min`
  return `${Math.floor(minutes / 60)} h${minutes % 60 === 0 ? '' : ` ${minutes % 60} min`}`
}

/** An instant as the hour and minute in UTC, to the nearest minute: "00:00 UTC". */
function utcTime (epochMs) {
  return `${new Date(Math.round(epochMs / 60000) * 60000).toISOString().slice(11, 16)} UTC`
}

/** The words for a refused POST /voice-token: { message, detail, usedUpUntil? }. */
async function refusalText (response) {
  let body = {}
  try {
    body = await response.json()
  } catch {}
  const detail = `POST ${TOKEN_PATH}: ${response.status}${body.code ? ` ${body.code}` : ''}`
  if (response.status === 429 && body.code === 'FST_OSHARA_QUOTA_EXCEEDED') {
    // The voice minutes are used up: the server's message is safe to show; Retry-After says
    // when the budget is whole again (midnight UTC).
    const seconds = Number(response.headers.get('retry-after'))
    const said = body.message ?? 'You have used up your voice minutes for now.'
    if (!Number.isFinite(seconds) || seconds <= 0) return { message: said, detail, usedUpUntil: undefined }
    const until = Date.now() + seconds * 1000
    return { message: `${said} Start call is available again at ${utcTime(until)} (in ${describeWait(seconds)}).`, detail, usedUpUntil: until }
  }
  if (response.status === 429) {
    const seconds = Number(response.headers.get('retry-after'))
    const minutes = seconds >= 120 ? ` (${Math.round(seconds / 60)} min)` : ''
    const wait = Number.isFinite(seconds) && seconds > 0 ? `try again in ${seconds} s${minutes}` : 'try again later'
    const hint = body.code === 'FST_OSHARA_SESSION_LIMIT' ? ' Or end your other call (in another tab?) to start one now.' : ''
    return { message: `Too many active calls, ${wait}.${hint}`, detail }
  }
  if (response.status === 401) return { message: 'You are not logged in.', detail }
  return { message: `The server could not start a call: ${body.message ?? response.statusText}`, detail }
}

/** The words for a failed room.connect(). */
function connectFailureText (url, error) {
  if (demo.upstream === 'emulator') {
    return `Could not reach the media server at ${url}: the local emulator mints real tokens but runs no LiveKit server. ` +
      'Your session is still reserved: press End call to release it.'
  }
  const reason = {
    [ConnectionErrorReason.NotAllowed]: 'it refused the token',
    [ConnectionErrorReason.Timeout]: 'it did not answer in time',
    [ConnectionErrorReason.Cancelled]: 'the connection was cancelled'
  }[error?.reason] ?? 'it could not be reached'
  return `Could not connect to the media server at ${url}: ${reason}. Press End call to release the session.`
}

/** Frees our limiter slot: DELETE /voice-token/{id}. True when it is free (204, or 404: already gone). */
async function releaseSlot (sessionId, keepalive = false) {
  try {
    const response = await fetch(`${TOKEN_PATH}/${encodeURIComponent(sessionId)}`, { method: 'DELETE', keepalive })
    return response.status === 204 || response.status === 404
  } catch {
    return false
  }
}

async function startCall () {
  ui.start.disabled = true
  setError('')
  setDetail('')
  setConnection('idle')
  setStatus('Asking the server for a voice token…', 'busy')

  let response
  try {
    response = await fetch(TOKEN_PATH, { method: 'POST', headers: { accept: 'application/json' } })
  } catch {
    setStatus('Could not reach this demo server. Is it still running?', 'bad')
    allowStart()
    return
  }
  if (!response.ok) {
    const text = await refusalText(response)
    if ('usedUpUntil' in text) minutesAreUsedUp(text.usedUpUntil)
    setStatus(text.message, response.status === 429 ? 'warn' : 'bad')
    setDetail(text.detail)
    allowStart()
    refreshUsage()
    return
  }

  const session = await response.json()
  refreshUsage()
  const claims = decodeJwtPayload(session.token)
  setField(ui.sessionId, session.session_id)
  setField(ui.room, claims.video?.room ?? session.room_name)
  setField(ui.identity, claims.sub ?? session.participant_identity)
  setField(ui.expires, describeExpiry(claims.exp))
  setField(ui.livekitUrl, session.livekit_url)

  const room = new Room()
  const current = { sessionId: session.session_id, room, connected: false }
  call = current
  room.on(RoomEvent.ConnectionStateChanged, (state) => {
    if (call === current) setConnection(state)
  })
  // The room closed under us (agent hung up, server ended it, network gone): free the slot.
  room.on(RoomEvent.Disconnected, () => {
    if (call === current && current.connected) endCall('The call ended: the room was closed.')
  })
  setCallButtons(true)
  setStatus(`Session ${session.session_id} is ready. Connecting to the media server…`, 'busy')

  try {
    await room.connect(session.livekit_url, session.token)
  } catch (error) {
    if (call !== current) return
    setConnection('failed')
    setStatus(connectFailureText(session.livekit_url, error), 'warn')
    setDetail(`livekit-client: ${error?.message ?? error}`)
    return
  }
  if (call !== current) return
  current.connected = true
  setConnection('connected')
  setStatus('Connected. Say hello: the agent can hear you.', 'ok')
  try {
    await room.localParticipant.setMicrophoneEnabled(true)
  } catch (error) {
    setError(`Connected, but the microphone is not available: ${error?.message ?? error}`)
  }
}

async function endCall (message = 'Call ended.') {
  const current = call
  if (current === null) return
  call = null
  setCallButtons(false)
  setError('')
  setDetail('')
  setStatus('Ending the call…', 'busy')
  await current.room.disconnect().catch(() => {})
  setConnection('ended')
  // The ended session's details are of no use any more: none of them stays on the page.
  clearSessionFields()
  const released = await releaseSlot(current.sessionId)
  setStatus(released
    ? `${message} Your slot is free: you can start a new call.`
    : `${message} The server did not confirm the release; the slot frees on its own later.`, released ? 'ok' : 'warn')
  allowStart()
  refreshPanels()
}

/** Asks the demo server to make the emulator end our call, as Oshara would: `{ ok, message }`. */
async function endOnOsharasSide (sessionId, reason) {
  try {
    const response = await fetch(`/demo/sessions/${encodeURIComponent(sessionId)}/end`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ reason })
    })
    if (response.ok) return { ok: true }
    const body = await response.json().catch(() => ({}))
    return { ok: false, message: `The emulator did not end the call: ${body.message ?? response.statusText}` }
  } catch {
    return { ok: false, message: 'Could not reach this demo server. Is it still running?' }
  }
}

/** Emulator only: the agent hangs up. Oshara closes the room; the page leaves it, as on any closed room. */
async function agentHangsUp () {
  const current = call
  if (current === null) return
  setCallButtons(false)
  setError('')
  const ended = await endOnOsharasSide(current.sessionId, 'agent_hangup')
  if (call !== current) return
  if (!ended.ok) {
    setError(ended.message)
    setCallButtons(true)
    return
  }
  await endCall('The agent hung up: the call ended.')
}

/**
 * Emulator only: a crashed tab. The page forgets its call and sends nothing (no DELETE: a crashed
 * tab cannot); the emulator ends the session, as Oshara does when the participant is gone. The
 * slot stays held until the next Start, when the plugin finds the call over before answering 429.
 */
async function simulateCrashedTab () {
  const current = call
  if (current === null) return
  call = null
  setCallButtons(false)
  current.room.disconnect().catch(() => {})
  setConnection('ended')
  clearSessionFields()
  setError('')
  setDetail('')
  setStatus('Simulating a crashed tab…', 'busy')
  const ended = await endOnOsharasSide(current.sessionId, 'tab_crashed')
  if (ended.ok) {
    setStatus('The tab "crashed": this page forgot its call without telling the server, and Oshara ended it. ' +
      'Press Start call: the server checks your calls before refusing one, so a new call starts at once.', 'ok')
  } else {
    setStatus('The tab "crashed": this page forgot its call without telling the server.', 'warn')
    setError(ended.message)
  }
  allowStart()
  refreshPanels()
}

function setToolResult (text, tone) {
  ui.toolResult.textContent = text
  ui.toolResult.dataset.tone = tone
  ui.toolResult.hidden = false
}

/** POSTs to a demo endpoint that makes the emulator call the tool; `{ tool, args, status, body }`, or null. */
async function toolCall (path) {
  try {
    const response = await fetch(path, { method: 'POST', headers: { accept: 'application/json' } })
    if (!response.ok) return null
    return await response.json()
  } catch {
    return null
  }
}

/** Emulator only: the agent calls the tool lookup_order during our call, as Oshara's worker would. */
async function agentLooksUpOrder () {
  const current = call
  if (current === null) return
  ui.lookupOrder.disabled = true
  setToolResult('The agent is calling lookup_order…', '')
  const answer = await toolCall(`/demo/sessions/${encodeURIComponent(current.sessionId)}/lookup-order`)
  if (call === current) ui.lookupOrder.disabled = false
  if (answer === null) {
    setToolResult('The tool call could not be made (is the call still in progress?).', 'bad')
  } else if (answer.status === 200) {
    const order = answer.body
    setToolResult(`The agent called lookup_order(${answer.args.order_id}): ${order.item}, ${order.status}, arriving ${order.eta}. ` +
      `The app answered for ${order.customer}: the user in the session's signed metadata.`, 'ok')
  } else {
    setToolResult(`The agent called lookup_order: ${answer.status} ${answer.body.code}: ${answer.body.error}`, 'bad')
  }
}

/** Emulator only: a session minted around the app, claiming another user, calls the tool. */
async function forgedToolCall () {
  ui.forgedCall.disabled = true
  setToolResult('A session minted straight at Oshara is calling lookup_order…', '')
  const answer = await toolCall('/demo/forged-tool-call')
  ui.forgedCall.disabled = false
  if (answer === null) {
    setToolResult('The forged call could not be made.', 'bad')
  } else if (answer.status === 200) {
    setToolResult(`The forged call got an answer (${JSON.stringify(answer.body)}): the tool is not protected.`, 'bad')
  } else {
    setToolResult(`Forged call refused: a session minted around this app, claiming to be ${answer.claimed.user_name}, ` +
      `asked for order ${answer.args.order_id} with the right secret and got ${answer.status} ${answer.body.code} (${answer.body.error}).`, 'ok')
  }
}

ui.start.addEventListener('click', () => { startCall() })
ui.end.addEventListener('click', () => { endCall() })
ui.agentHangup.addEventListener('click', () => { agentHangsUp() })
ui.crashTab.addEventListener('click', () => { simulateCrashedTab() })
ui.lookupOrder.addEventListener('click', () => { agentLooksUpOrder() })
ui.forgedCall.addEventListener('click', () => { forgedToolCall() })

/** 42 s, 3 min 05 s. */
function describeDuration (seconds) {
  if (typeof seconds !== 'number') return '–'
  const whole = Math.round(seconds)
  if (whole < 60) return `${whole} s`
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`
}

function describeTime (iso) {
  if (!iso) return '–'
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
}

const ROLE_WORDS = { assistant: 'Agent', user: 'Caller' }

function cell (text, className) {
  const td = document.createElement('td')
  td.textContent = text
  if (className) td.className = className
  return td
}

function recentRow (recent) {
  const row = document.createElement('tr')
  row.dataset.sessionId = recent.session_id
  const excerpt = document.createElement('ul')
  excerpt.className = 'excerpt'
  for (const line of recent.transcript) {
    const item = document.createElement('li')
    const role = document.createElement('b')
    role.textContent = `${ROLE_WORDS[line.role] ?? line.role}: `
    item.append(role, line.text)
    excerpt.append(item)
  }
  const transcript = cell('')
  if (recent.transcript.length > 0) transcript.append(excerpt)
  else transcript.textContent = 'no transcript'
  row.append(
    cell(describeTime(recent.ended_at), 'num'),
    cell(recent.session_id, 'mono'),
    cell(describeDuration(recent.duration_seconds), 'num'),
    cell(recent.cost_usd === null ? '–' : `$${recent.cost_usd}`, 'num'),
    transcript
  )
  return row
}

/** What the panel shows now (the server's answer as JSON), so that an unchanged answer is not redrawn. */
let recentShown = ''
/** False once the server says it does not track sessions (no API key): no more polling. */
let recentAvailable = true
let recentLoading = false

async function refreshRecentCalls () {
  if (!recentAvailable || recentLoading) return
  recentLoading = true
  try {
    const response = await fetch(RECENT_PATH, { headers: { accept: 'application/json' } })
    if (response.ok) showRecentCalls(await response.json())
  } catch {
  } finally {
    recentLoading = false
  }
}

function showRecentCalls (answer) {
  const json = JSON.stringify(answer)
  if (json === recentShown) return
  recentShown = json
  if (!answer.tracking) {
    recentAvailable = false
    ui.recentNote.textContent = 'Recent calls need an API key: start the demo with OSHARA_API_KEY set (it stays on the server) to see them here.'
    ui.recentTable.hidden = true
    return
  }
  const calls = answer.calls ?? []
  ui.recentNote.textContent = calls.length === 0
    ? 'No ended calls yet. A call shows up here a few seconds after it ends.'
    : `Your last ${calls.length === 1 ? 'call' : `${calls.length} calls`}, newest first.`
  ui.recentRows.replaceChildren(...calls.map(recentRow))
  ui.recentTable.hidden = calls.length === 0
}

/** The unit a figure of voice time reads best in: minutes from one minute up, seconds below (0.25 min is 15 s). */
function timeUnit (minutes) {
  return minutes >= 1 ? 'min' : 's'
}

/**
 * A figure of voice time in `unit`. What is left is rounded down (never more than the server
 * allows): 8.5 min, 3 s. The budget as set: 2.5 min, 1.25 min, 15 s.
 */
function describeVoiceTime (minutes, unit, { roundDown }) {
  if (unit === 's') return String(roundDown ? Math.floor(minutes * 60 + 1e-9) : Math.round(minutes * 60))
  return String(roundDown ? Math.floor(minutes * 10 + 1e-9) / 10 : Number(minutes.toFixed(2)))
}

/** "8.5 of 10 min", "5 of 15 s", "3 s of 1 min": what is left of the budget, each in the unit that reads best. */
function describeLeft (left, budget) {
  const budgetUnit = timeUnit(budget)
  const leftUnit = left === 0 ? budgetUnit : timeUnit(left)
  const leftText = describeVoiceTime(left, leftUnit, { roundDown: true })
  const budgetText = describeVoiceTime(budget, budgetUnit, { roundDown: false })
  return leftUnit === budgetUnit ? `${leftText} of ${budgetText} ${budgetUnit}` : `${leftText} ${leftUnit} of ${budgetText} ${budgetUnit}`
}

const NO_BUDGET_TITLE = 'This demo gives no voice minutes today (DEMO_MINUTES=0).'

/** False once the server says it does not count voice minutes (no API key): no more polling. */
let usageAvailable = true
let usageLoading = false

/** The voice minutes line: GET /demo/usage (what the user used today, and their budget). */
async function refreshUsage () {
  if (!usageAvailable || usageLoading) return
  usageLoading = true
  const asked = Date.now()
  try {
    const response = await fetch(USAGE_PATH, { headers: { accept: 'application/json' } })
    if (response.ok) showUsage(await response.json(), asked)
  } catch {
  } finally {
    usageLoading = false
  }
}

function showUsage (answer, asked) {
  if (!answer.quota) {
    usageAvailable = false
    ui.minutesText.textContent = 'Voice minutes are not counted: like Recent calls, they need OSHARA_API_KEY.'
    ui.minutesMeter.hidden = true
    ui.minutesNote.hidden = true
    return
  }
  const budget = answer.budget.minutes
  if (budget <= 0) {
    showNoBudget()
    return
  }
  if (noMinutesBudget) minutesBudgetIsBack()
  const left = Math.max(0, budget - answer.usage.minutes)
  ui.minutesText.textContent = `Voice time left today: ${describeLeft(left, budget)} (resets at ${utcTime(Date.parse(answer.usage.resetsAt))})`
  ui.minutesMeter.max = budget
  ui.minutesMeter.low = budget * 0.2
  ui.minutesMeter.high = budget * 0.5
  ui.minutesMeter.optimum = budget
  ui.minutesMeter.value = left
  ui.minutesMeter.hidden = false
  ui.minutesNote.hidden = false
  // Minutes left again after a refusal (a new day, or a restarted server): Start call is back.
  if (minutesUsedUp !== null && asked > minutesUsedUp.since && answer.usage.minutes < budget) minutesAreBack()
}

/** A budget of 0 voice minutes a day: nothing to call with, so Start call is off and says why. */
function showNoBudget () {
  ui.minutesText.textContent = 'No voice minutes today: this demo\'s daily budget is 0 (DEMO_MINUTES=0).'
  ui.minutesMeter.hidden = true
  ui.minutesNote.hidden = true
  if (noMinutesBudget) return
  noMinutesBudget = true
  ui.start.title = NO_BUDGET_TITLE
  allowStart()
  if (call === null) {
    setDetail('')
    setStatus('Start call is off: there are no voice minutes to use today. Restart the demo with some, e.g. DEMO_MINUTES=10 npm start.', 'warn')
  }
}

/** The server has a budget again (restarted with DEMO_MINUTES above 0): Start call is back. */
function minutesBudgetIsBack () {
  noMinutesBudget = false
  if (minutesUsedUp === null) ui.start.title = ''
  allowStart()
  if (call === null && minutesUsedUp === null) setStatus('Ready. Press Start call to get a voice token and join the room.')
}

/** The server refused a call because the voice minutes are used up: Start waits until `until`. */
function minutesAreUsedUp (until) {
  if (minutesUsedUp !== null) clearTimeout(minutesUsedUp.timer)
  const wait = until === undefined ? undefined : Math.max(0, until - Date.now()) + 1000
  minutesUsedUp = { since: Date.now(), timer: wait === undefined ? undefined : setTimeout(minutesAreBack, wait) }
  ui.start.title = 'Your voice minutes are used up for today.'
}

function minutesAreBack () {
  if (minutesUsedUp === null) return
  clearTimeout(minutesUsedUp.timer)
  minutesUsedUp = null
  ui.start.title = noMinutesBudget ? NO_BUDGET_TITLE : ''
  if (call === null && !noMinutesBudget) {
    allowStart()
    setDetail('')
    setStatus('Your voice minutes are back. Press Start call to get a voice token and join the room.')
  }
  refreshUsage()
}

function refreshPanels () {
  refreshRecentCalls()
  refreshUsage()
}

// While the page is visible, the panels ask every couple of seconds (and at once when a call ends).
setInterval(() => {
  if (document.visibilityState === 'visible') refreshPanels()
}, RECENT_POLL_MS)
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refreshPanels()
})

// Closing or leaving the tab ends the call. sendBeacon cannot send DELETE; a keepalive fetch
// outlives the page.
window.addEventListener('pagehide', () => {
  const current = call
  if (current === null) return
  call = null
  releaseSlot(current.sessionId, true)
  current.room.disconnect()
  setCallButtons(false)
  allowStart()
  setConnection('ended')
  clearSessionFields()
  setStatus('Call ended when the page was left.')
})

async function loadContext () {
  try {
    const response = await fetch('/api/demo')
    if (response.ok) demo = await response.json()
  } catch {}
  ui.agent.textContent = demo.agent ?? ui.agent.textContent
  ui.user.textContent = demo.user ? `${demo.user.name} (${demo.user.plan})` : 'unknown'
  ui.upstream.textContent = demo.upstream === 'oshara' ? 'Oshara' : 'local emulator'
  ui.controls.hidden = demo.upstream !== 'emulator'
  setStatus('Ready. Press Start call to get a voice token and join the room.')
  refreshPanels()
}

loadContext()
