// Tests measure coverage of lib/ only; a test that loads the built dist/ (exports.test.ts) measures nothing.
import { readdirSync } from 'node:fs'

const sources = readdirSync('lib', { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.ts'))
  .map((file) => `lib/${file}`)

export default function coverageMap (testFile) {
  return /(^|\/)exports\.test\.ts$/.test(testFile) ? null : sources
}
