// Tests measure coverage of lib/ only. Measuring nothing: tests that load the built dist/
// (exports, readme-snippets), and the demo test, which also runs the demo as a child process
// compiled by tsx: V8 coverage of differently compiled copies of one file cannot be merged.
// Without redis-server (and no REDIS_URL) the Redis tests are skipped with a message saying so,
// and the Redis stores are then left out of the coverage requirement instead of failing the run.
import { accessSync, constants, readdirSync } from 'node:fs'
import { delimiter, join } from 'node:path'

function onPath (command) {
  return (process.env.PATH ?? '').split(delimiter).some((directory) => {
    try {
      accessSync(join(directory, command), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

const redisAvailable = Boolean(process.env.REDIS_URL) || onPath('redis-server')
const REDIS_SOURCES = ['lib/limits/redis-client.ts', 'lib/limits/redis-store.ts', 'lib/quota/redis-quota-store.ts']

const sources = readdirSync('lib', { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.ts'))
  .map((file) => `lib/${file}`)
  .filter((file) => redisAvailable || !REDIS_SOURCES.includes(file))

export default function coverageMap (testFile) {
  return /(^|\/)(exports|readme-snippets|demo)\.test\.ts$/.test(testFile) ? null : sources
}
