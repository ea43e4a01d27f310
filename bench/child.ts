// One process of the run, started by bench/run.ts:
//   node --import tsx bench/child.ts emulator
//   node --import tsx bench/child.ts <variant> <emulator url> <redis url or ''> <cluster masters or ''>
// Once listening it sends `{ url }`; then it answers each message with `{ cpu }`, its CPU time
// (user + system, µs) so far. `reset` first makes the emulator forget the sessions it minted;
// `close` closes and exits.
import Fastify from 'fastify'

const [role = '', oshara = '', redis = '', cluster = ''] = process.argv.slice(2)
let url: string
let close: () => Promise<void>
let reset = (): void => {}

if (role === 'emulator') {
  const { createOsharaEmulator } = await import('../lib/emulator.js')
  const { AGENT, API_KEY, ORIGIN } = await import('./variants.js')
  const emulator = await createOsharaEmulator({ characters: [{ slug: AGENT, allowed_origins: [ORIGIN] }], apiKeys: [API_KEY], record: false })
  // It keeps every minted session; emptied before each measurement, it is the same for every variant.
  reset = () => { (emulator.sessions as Map<string, unknown>).clear() }
  url = emulator.url
  close = () => emulator.close()
} else {
  const { VARIANTS } = await import('./variants.js')
  const variant = VARIANTS[role]
  if (variant === undefined) throw new Error(`unknown variant ${role}`)
  const app = Fastify({ logger: variant.logging === true ? { level: 'info', file: '/dev/null' } : false })
  const closeClients = await variant.setup(app, { oshara, redis: redis === '' ? undefined : redis, cluster: cluster === '' ? undefined : cluster })
  url = await app.listen({ host: '127.0.0.1', port: 0 })
  close = async () => {
    await app.close()
    await closeClients()
  }
}

function cpu (): number {
  const { user, system } = process.cpuUsage()
  return user + system
}

process.on('message', (message: 'cpu' | 'reset' | 'close') => {
  if (message === 'reset') reset()
  if (message !== 'close') {
    process.send?.({ cpu: cpu() })
    return
  }
  close().then(() => process.exit(0), (error: unknown) => {
    console.error(error)
    process.exit(1)
  })
})
process.on('disconnect', () => process.exit(0))
process.send?.({ url })
