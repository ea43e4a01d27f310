// Tests measure coverage of lib/ only; a test that loads the built dist/ (exports.test.ts,
// readme-snippets.test.ts) measures nothing.
// Without redis-server (and no REDIS_URL) the Redis tests are skipped with a message saying so,
// and the Redis store is then left out of the coverage requirement instead of failing the run.
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

const sources = readdirSync('lib', { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.ts'))
  .map((file) => `lib/${file}`)
  .filter((file) => redisAvailable || file !== 'lib/limits/redis-store.ts')

export default function coverageMap (testFile) {
  return /(^|\/)(exports|readme-snippets)\.test\.ts$/.test(testFile) ? null : sources
}
