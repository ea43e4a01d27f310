import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { Agent } from 'undici'
import osharaVoice, {
  createOsharaClient,
  type BreakerOptions,
  type OsharaClient,
  type OsharaClientOptions,
  type OsharaLimitsOptions,
  type OsharaRouteDocs,
  type OsharaRouteOptions,
  type OsharaToolsOptions,
  type OsharaUpstreamOptions,
  type OsharaVoiceOwnClientOptions,
  type OsharaVoiceSharedClientOptions,
  type RetryOptions
} from '../lib/index.js'
import { BREAKER_OPTIONS, CLIENT_OPTIONS, type ClientConfig, RETRY_OPTIONS, UPSTREAM_OPTIONS } from '../lib/client/options.js'
import { normalizePluginOptions } from '../lib/options/normalize.js'
import { createRegistration } from '../lib/registration.js'
import {
  DEFAULTS,
  LIMIT_OPTIONS,
  PLUGIN_OPTION_NAMES,
  PLUGIN_OPTIONS,
  ROUTE_DOC_OPTIONS,
  ROUTE_OPTIONS,
  TOOLS_OPTIONS,
  UPSTREAM_OPTION_NAMES
} from '../lib/options/registry.js'
import { type OptionGroup, type OptionName, optionNames } from '../lib/options/spec.js'
import { ORIGIN } from './helpers/emulator.js'

// Option names, defaults and checks live in one registry (lib/options/registry.ts). These
// checks fail the typecheck (tsc -p test/tsconfig.json) when a registry group and its option
// type drift apart, and the tests below fail when a checked option does not reach the client.

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
/** `true` only when the group has exactly the option type's names. */
type Covers<Group, Options> = Same<keyof Group, OptionName<Options>>

const groupsMatchTheirTypes: [
  Covers<typeof UPSTREAM_OPTIONS, OsharaUpstreamOptions>,
  Covers<typeof CLIENT_OPTIONS, OsharaClientOptions>,
  Covers<typeof RETRY_OPTIONS, RetryOptions>,
  Covers<typeof BREAKER_OPTIONS, BreakerOptions>,
  Covers<typeof LIMIT_OPTIONS, OsharaLimitsOptions>,
  Covers<typeof ROUTE_OPTIONS, OsharaRouteOptions>,
  Covers<typeof ROUTE_DOC_OPTIONS, OsharaRouteDocs>,
  Covers<typeof TOOLS_OPTIONS, OsharaToolsOptions>,
  // Both forms of the plugin options: the plugin's own names plus the upstream ones, no more, no fewer.
  Same<keyof typeof PLUGIN_OPTIONS | keyof typeof UPSTREAM_OPTIONS, OptionName<OsharaVoiceOwnClientOptions>>,
  Same<keyof typeof PLUGIN_OPTIONS | keyof typeof UPSTREAM_OPTIONS, OptionName<OsharaVoiceSharedClientOptions>>,
  // The client's effective config holds every client option (baseUrl split into origin and path).
  Same<Exclude<keyof typeof CLIENT_OPTIONS, 'baseUrl'>, Exclude<keyof ClientConfig, 'upstreamOrigin' | 'basePath'>>
] = [true, true, true, true, true, true, true, true, true, true, true]

const spec = { check: (value: unknown) => value }
const groupMismatches = [
  // @ts-expect-error an option type with no registry entry (storeTimeoutMs) fails the typecheck
  { concurrency: spec, key: spec, global: spec, store: spec, holdMs: spec, onStoreError: spec } satisfies OptionGroup<OsharaLimitsOptions>,
  // @ts-expect-error a registry entry with no option type (max) fails the typecheck
  { concurrency: spec, key: spec, global: spec, store: spec, holdMs: spec, onStoreError: spec, storeTimeoutMs: spec, max: spec } satisfies OptionGroup<OsharaLimitsOptions>,
  // @ts-expect-error x-* extensions of the route docs are not entries
  { tags: spec, summary: spec, description: spec, security: spec, operationId: spec, hide: spec, deprecated: spec, externalDocs: spec, 'x-internal': spec } satisfies OptionGroup<OsharaRouteDocs>
]

t.test('the registry groups match their option types', async (t) => {
  t.ok(groupsMatchTheirTypes.every((match) => match))
  t.equal(groupMismatches.length, 3)
})

t.test('the accepted names are the registry keys', async (t) => {
  t.same(UPSTREAM_OPTION_NAMES, optionNames(CLIENT_OPTIONS).filter((name) => name !== 'origin' && name !== 'logger'))
  t.same([...PLUGIN_OPTION_NAMES].sort(), [...optionNames(PLUGIN_OPTIONS), ...optionNames(UPSTREAM_OPTIONS)].sort())
  t.equal(new Set(PLUGIN_OPTION_NAMES).size, PLUGIN_OPTION_NAMES.length)
})

t.test('the defaults are one frozen object', async (t) => {
  t.ok(Object.isFrozen(DEFAULTS))
  for (const [group, values] of Object.entries(DEFAULTS)) {
    t.ok(Object.isFrozen(values), group)
    for (const value of Object.values(values)) if (typeof value === 'object') t.ok(Object.isFrozen(value), group)
  }
})

/** What the client works with (its private, normalised config). */
function configOf (client: OsharaClient): ClientConfig {
  return (client as unknown as { transport: { config: ClientConfig } }).transport.config
}

async function pluginClientConfig (t: Test, upstream: OsharaUpstreamOptions): Promise<ClientConfig> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', route: false, ...upstream })
  await app.ready()
  return configOf(app.oshara.client)
}

t.test('every upstream option reaches the client the plugin makes', async (t) => {
  const dispatcher = new Agent()
  t.teardown(() => dispatcher.close())
  // One distinctive value per upstream option: a new option fails the typecheck here until it has one.
  const distinctive: { [K in keyof Required<OsharaUpstreamOptions>]: OsharaUpstreamOptions[K] } = {
    baseUrl: 'http://127.0.0.1:9/distinct',
    apiKey: 'sk_distinct',
    timeoutMs: 1234,
    deadlineMs: 5678,
    retry: { retries: 7, statusCodes: [502, 503] },
    breaker: false,
    dispatcher
  }
  t.same(Object.keys(distinctive).sort(), [...UPSTREAM_OPTION_NAMES].sort())

  const direct = createOsharaClient({ origin: ORIGIN, ...distinctive })
  t.teardown(() => direct.close())
  t.same(await pluginClientConfig(t, distinctive), configOf(direct), 'all at once: the same config as createOsharaClient')

  const defaults = await pluginClientConfig(t, {})
  for (const name of UPSTREAM_OPTION_NAMES) {
    t.notSame(await pluginClientConfig(t, { [name]: distinctive[name] }), defaults, `${name} changes the client`)
  }
})

t.test('a client without options uses the defaults', async (t) => {
  const client = createOsharaClient({ origin: ORIGIN })
  t.teardown(() => client.close())
  const config = configOf(client)
  t.equal(config.upstreamOrigin, DEFAULTS.client.baseUrl)
  t.equal(config.timeoutMs, DEFAULTS.client.timeoutMs)
  t.equal(config.deadlineMs, DEFAULTS.client.deadlineMs)
  t.same({ ...config.retry, statusCodes: [...config.retry.statusCodes] }, DEFAULTS.retry)
  t.same(config.breaker, DEFAULTS.breaker)
})

t.test('routeOptions.bodyLimit is checked at register', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => {
    await app.register(osharaVoice, { origin: ORIGIN, agent: 'support-bot', routeOptions: { bodyLimit: 0 } })
  }, { code: 'FST_OSHARA_INVALID_OPTIONS', message: /"routeOptions\.bodyLimit" must be an integer >= 1, got number 0.*\(default 16384\)/ })
})

t.test('a limiter reservation outlives the client deadline', async (t) => {
  const pendingMs = async (options: object): Promise<number | undefined> => {
    const registration = createRegistration(normalizePluginOptions({ origin: ORIGIN, agent: 'support-bot', limits: { concurrency: 1 }, ...options }), undefined, Fastify().log)
    await registration.client.close()
    return registration.limiter?.config.pendingMs
  }
  t.equal(await pendingMs({}), DEFAULTS.client.deadlineMs + 5000)
  t.equal(await pendingMs({ deadlineMs: 30000 }), 35000)
  const client = createOsharaClient({ origin: ORIGIN })
  t.teardown(() => client.close())
  t.equal(await pendingMs({ client }), 60000, 'a shared client: its deadline is not known')
})
