import t from 'tap'
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { VERSION } from '../lib/version.js'

// The built package as users load it: ESM import and CJS require, through package.json exports.
// (Not measured for coverage: see coverage-map.mjs. `npm test` builds first.)

const require = createRequire(import.meta.url)
const expected = [
  'MemoryQuotaStore', 'MemorySessionStore', 'OsharaAbortedError', 'OsharaAgentNotFoundError', 'OsharaBadResponseError', 'OsharaCallbackError', 'OsharaError',
  'OsharaFieldNotAllowedError', 'OsharaIdempotencyInProgressError', 'OsharaIdempotencyKeyReusedError', 'OsharaInvalidIdempotencyKeyError', 'OsharaInvalidOptionsError', 'OsharaInvalidSessionError', 'OsharaOriginForbiddenError', 'OsharaOriginNotAllowedError',
  'OsharaQuotaExceededError', 'OsharaRequestRejectedError', 'OsharaSessionEndedError', 'OsharaSessionLimitError', 'OsharaSessionNotFoundError', 'OsharaTimeoutError',
  'OsharaToolArgumentsError', 'OsharaToolFailedError', 'OsharaToolForbiddenError', 'OsharaToolRefusedError', 'OsharaToolTimeoutError', 'OsharaToolUnauthorizedError',
  'OsharaUnauthorizedError', 'OsharaUnavailableError', 'OsharaUpstreamError', 'OsharaUpstreamLimitError',
  'RedisQuotaStore', 'RedisSessionStore', 'VERSION', 'createOsharaClient', 'default', 'osharaVoice'
]

t.test('ESM: default and named exports', async (t) => {
  const esm = await import('fastify-oshara-voice')
  t.same(Object.keys(esm).sort(), expected)
  t.equal(esm.default, esm.osharaVoice)
  t.equal(typeof esm.default, 'function')
  t.equal((esm.default as unknown as Record<symbol, unknown>)[Symbol.for('plugin-meta')] !== undefined, true, 'wrapped with fastify-plugin')
  const emulator = await import('fastify-oshara-voice/emulator')
  t.same(Object.keys(emulator), ['createOsharaEmulator'])
  const testing = await import('fastify-oshara-voice/testing')
  t.same(Object.keys(testing).sort(), ['idempotencyStoreContract', 'quotaStoreContract', 'sessionStoreContract'])
  const stores = await import('fastify-oshara-voice/stores')
  t.same(Object.keys(stores), [], 'the stores entry has types only')
})

t.test('CJS: require gives the plugin itself, with the same named exports', async (t) => {
  const cjs = require('fastify-oshara-voice')
  t.equal(typeof cjs, 'function')
  t.equal(cjs, cjs.default)
  t.equal(cjs, cjs.osharaVoice)
  // fastify-plugin itself adds the camel-cased name.
  t.same(Object.keys(cjs).sort(), [...expected, 'fastifyOsharaVoice'].sort())
  const { default: Fastify } = await import('fastify')
  const app = Fastify()
  await app.register(cjs, { origin: 'https://app.example.com', agent: 'a', baseUrl: 'http://127.0.0.1:9' })
  t.ok(app.hasDecorator('oshara'), 'registers as module.exports')
  await app.close()
  t.notOk(Object.keys(require.cache).some((file) => file.includes('/dist/cjs/testing/')), 'the main entry does not load the testing suite')
  t.equal(typeof require('fastify-oshara-voice/emulator').createOsharaEmulator, 'function')
  t.same(Object.keys(require('fastify-oshara-voice/testing')).sort(), ['idempotencyStoreContract', 'quotaStoreContract', 'sessionStoreContract'])
  t.same(Object.keys(require('fastify-oshara-voice/stores')), [], 'the stores entry has types only')
  t.ok(new cjs.OsharaSessionLimitError('x') instanceof cjs.OsharaError)
})

t.test('the built plugin works', async (t) => {
  const { default: Fastify } = await import('fastify')
  const { default: osharaVoice } = await import('fastify-oshara-voice')
  const { createOsharaEmulator } = await import('fastify-oshara-voice/emulator')
  const emulator = await createOsharaEmulator({ characters: [{ slug: 'a', allowed_origins: ['https://app.example.com'] }] })
  t.teardown(() => emulator.close())
  const app = Fastify()
  await app.register(osharaVoice, { origin: 'https://app.example.com', agent: 'a', baseUrl: emulator.url })
  t.teardown(() => app.close())
  const response = await app.inject({ method: 'POST', url: '/voice-token' })
  t.equal(response.statusCode, 200)
})

t.test('the built store contract passes the built MemorySessionStore', async (t) => {
  const { MemorySessionStore } = require('fastify-oshara-voice')
  const { sessionStoreContract } = require('fastify-oshara-voice/testing')
  for (const { name, run } of sessionStoreContract({ createStore: () => new MemorySessionStore() })) t.test(name, run)
})

t.test('every subpath in package.json exports has its shim for resolvers without exports, listed in files', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { exports: Record<string, unknown>, files: string[] }
  const subpaths = Object.keys(pkg.exports).filter((subpath) => subpath !== '.' && subpath !== './package.json').map((subpath) => subpath.slice(2))
  t.same(subpaths.sort(), ['emulator', 'stores', 'testing'])
  for (const subpath of subpaths) {
    const shim = JSON.parse(readFileSync(new URL(`../${subpath}/package.json`, import.meta.url), 'utf8')) as { main: string, types: string }
    t.same(shim, { private: true, main: `../dist/cjs/${subpath}.js`, types: `../dist/cjs/${subpath}.d.ts` }, `${subpath}/package.json`)
    t.ok(pkg.files.includes(`${subpath}/package.json`), `${subpath}/package.json is published`)
  }
})

t.test('VERSION matches package.json (it is sent as the user-agent)', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  t.equal(VERSION, pkg.version)
})
