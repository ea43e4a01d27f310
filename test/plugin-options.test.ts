import t from 'tap'
import Fastify from 'fastify'
import { Agent } from 'undici'
import osharaVoice, { createOsharaClient, MemorySessionStore, OsharaInvalidOptionsError, type OsharaVoiceOptions } from '../lib/index.js'
import { buildApp, postToken, registerError } from './helpers/app.js'
import { ORIGIN, startEmulator } from './helpers/emulator.js'

// Wrong options fail at register (the app does not start) naming the option and the fix.

const base = { origin: ORIGIN, agent: 'support-bot' }
const store = new MemorySessionStore()

const cases: Array<[string, unknown, RegExp]> = [
  ['no options', undefined, /"agent" is required/],
  ['options that are not an object', 'support-bot', /"options" must be an object, got "support-bot"/],
  ['missing origin', { agent: 'a' }, /"origin" is required.*Fix: set origin/],
  ['an origin with a path', { ...base, origin: 'https://app.example.com/voice' }, /"origin" must be an origin without path.*use 'https:\/\/app\.example\.com'/],
  ['an origin that is not a URL', { ...base, origin: 'app.example.com' }, /"origin" is not an absolute URL/],
  ['an origin with another scheme', { ...base, origin: 'ftp://app.example.com' }, /"origin" must use http or https/],
  ['missing agent', { origin: ORIGIN }, /"agent" is required/],
  ['an empty agent', { ...base, agent: '' }, /"agent" is required/],
  ['a non-function metadata', { ...base, metadata: { user_id: 1 } }, /"metadata" must be a function, got an object.*Fix: pass \(request\)/],
  ['a non-function onSession', { ...base, onSession: 'log' }, /"onSession" must be a function/],
  ['a client that is not an OsharaClient', { ...base, client: 'later' }, /"client" must be an OsharaClient/],
  ['an unknown option', { ...base, agnet: 'typo' }, /"options\.agnet" is not a known option.*known: origin/],
  ['clientFields with a server-only field', { ...base, clientFields: ['language', 'metadata'] }, /"clientFields" must be an array of 'language'.*metadata and mcp_headers are server-only/],
  ['an empty agents list', { ...base, agents: [] }, /"agents" must be a non-empty array/],
  ['a language that is not a tag', { ...base, languages: ['en', 'english language'] }, /"languages" holds "english language"/],
  ['a path without a slash', { ...base, path: 'voice-token' }, /"path" must be a static absolute path: starting with '\/'/],
  ['a path with a trailing slash', { ...base, path: '/voice-token/' }, /"path"/],
  ['a path with a wildcard', { ...base, path: '/voice/*' }, /"path" must be a static absolute path.*wildcards \('\*'\).*Fix: e\.g\. path: '\/api\/voice-token'/],
  ['a path with a wildcard and limits (the DELETE route goes under it)', { ...base, path: '/voice/*', limits: { concurrency: 1 } }, /"path" must be a static absolute path/],
  ['a path with a route parameter', { ...base, path: '/voice/:agent' }, /"path" must be a static absolute path/],
  ['a path with a regular expression', { ...base, path: '/voice(\\d+)' }, /"path" must be a static absolute path/],
  ['routeOptions.constraints that is not an object', { ...base, routeOptions: { constraints: 5 } }, /"routeOptions\.constraints" must be an object, got number 5.*Fix: e\.g\. constraints: \{ host/],
  ['routeOptions.config that is not an object', { ...base, routeOptions: { config: 3 } }, /"routeOptions\.config" must be an object, got number 3.*Fix: e\.g\. config: \{/],
  ['routeOptions.logLevel that is no level, in an app without a logger', { ...base, routeOptions: { logLevel: 'loud' } }, /"routeOptions\.logLevel" must be one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent', got "loud"/],
  ['routeOptions.schema.tags that is a string', { ...base, routeOptions: { schema: { tags: 'a' } } }, /"routeOptions\.schema\.tags" must be an array of strings, got "a".*Fix: e\.g\. tags: \['voice'\]/],
  ['routeOptions.schema.tags with a number', { ...base, routeOptions: { schema: { tags: ['voice', 1] } } }, /"routeOptions\.schema\.tags" must be an array of strings/],
  ['routeOptions.schema.summary that is not a string', { ...base, routeOptions: { schema: { summary: 5 } } }, /"routeOptions\.schema\.summary" must be a string, got number 5/],
  ['routeOptions.schema.description that is not a string', { ...base, routeOptions: { schema: { description: ['a'] } } }, /"routeOptions\.schema\.description" must be a string, got an array/],
  ['routeOptions.schema.operationId that is not a string', { ...base, routeOptions: { schema: { operationId: {} } } }, /"routeOptions\.schema\.operationId" must be a string/],
  ['routeOptions.schema.security that is not an array', { ...base, routeOptions: { schema: { security: { bearer: [] } } } }, /"routeOptions\.schema\.security" must be an array of security requirement objects.*Fix: e\.g\. security: \[\{ bearer: \[\] \}\]/],
  ['routeOptions.schema.security with a string', { ...base, routeOptions: { schema: { security: ['bearer'] } } }, /"routeOptions\.schema\.security" must be an array of security requirement objects/],
  ['routeOptions.schema.security with scopes that are not a list', { ...base, routeOptions: { schema: { security: [{ bearer: 'read' }] } } }, /"routeOptions\.schema\.security"/],
  ['routeOptions.schema.hide that is not a boolean', { ...base, routeOptions: { schema: { hide: 'yes' } } }, /"routeOptions\.schema\.hide" must be a boolean, got "yes"/],
  ['routeOptions.schema.deprecated that is not a boolean', { ...base, routeOptions: { schema: { deprecated: 1 } } }, /"routeOptions\.schema\.deprecated" must be a boolean, got number 1/],
  ['routeOptions.schema.externalDocs that is a string', { ...base, routeOptions: { schema: { externalDocs: 'https://docs.example.com' } } }, /"routeOptions\.schema\.externalDocs" must be an object with a url string/],
  ['routeOptions.schema.externalDocs without a url', { ...base, routeOptions: { schema: { externalDocs: { description: 'Docs' } } } }, /"routeOptions\.schema\.externalDocs" must be an object with a url string/],
  ['routeOptions.schema.externalDocs with a description that is not a string', { ...base, routeOptions: { schema: { externalDocs: { url: 'https://docs.example.com', description: 1 } } } }, /"routeOptions\.schema\.externalDocs"/],
  ['a non-boolean route', { ...base, route: 'no' }, /"route" must be a boolean/],
  ['a bad decorator name', { ...base, decorator: 'my-voice' }, /"decorator" must be an identifier or false/],
  ['routeOptions with a handler', { ...base, routeOptions: { handler: () => {} } }, /"routeOptions\.handler" is not a known option/],
  ['routeOptions.schema.body', { ...base, routeOptions: { schema: { body: {} } } }, /"routeOptions\.schema\.body" is not accepted: the plugin owns the body/],
  ['routeOptions.schema not an object', { ...base, routeOptions: { schema: [] } }, /"routeOptions\.schema" must be an object/],
  ['limits without concurrency', { ...base, limits: {} }, /"limits\.concurrency" is required/],
  ['limits.concurrency 0', { ...base, limits: { concurrency: 0 } }, /"limits\.concurrency" must be an integer >= 1, got number 0/],
  ['limits.global 1.5', { ...base, limits: { concurrency: 1, global: 1.5 } }, /"limits\.global" must be an integer/],
  ['limits.onStoreError', { ...base, limits: { concurrency: 1, onStoreError: 'ignore' } }, /"limits\.onStoreError" must be 'deny' or 'allow'/],
  ['limits.store without methods', { ...base, limits: { concurrency: 1, store: {} } }, /"limits\.store" must implement acquire, bind, release, releaseSession/],
  ['limits.key not a function', { ...base, limits: { concurrency: 1, key: 'ip' } }, /"limits\.key" must be a function/],
  ['limits.holdMs negative', { ...base, limits: { concurrency: 1, holdMs: -1 } }, /"limits\.holdMs"/],
  ['an unknown limits option', { ...base, limits: { concurrency: 1, max: 3 } }, /"limits\.max" is not a known option/],
  ['timeoutMs as a string', { ...base, timeoutMs: '10s' }, /"timeoutMs" must be an integer between 1 and 2147483647 ms \(about 24\.8 days, the longest a Node\.js timer waits\), got "10s"/],
  ['deadlineMs 0', { ...base, deadlineMs: 0 }, /"deadlineMs" must be an integer between 1 and 2147483647 ms/],
  ['retry.retries 11', { ...base, retry: { retries: 11 } }, /"retry\.retries" must be an integer between 0 and 10/],
  ['retry.statusCodes with 404', { ...base, retry: { statusCodes: [404] } }, /"retry\.statusCodes" must be an array of 5xx statuses/],
  ['retry.onTimeout as a string', { ...base, retry: { onTimeout: 'yes' } }, /"retry\.onTimeout" must be a boolean/],
  ['retry as a number', { ...base, retry: 3 }, /"retry" must be an object, got number 3/],
  ['an unknown retry option', { ...base, retry: { attempts: 3 } }, /"retry\.attempts" is not a known option/],
  ['breaker.cooldownMs 0', { ...base, breaker: { cooldownMs: 0 } }, /"breaker\.cooldownMs"/],
  ['a baseUrl that is not a URL', { ...base, baseUrl: 'oshara' }, /"baseUrl" must be an absolute http\(s\) URL/],
  ['a baseUrl that is not a string', { ...base, baseUrl: 443 }, /"baseUrl" must be an absolute http\(s\) URL, got number 443/],
  ['a long origin', { ...base, origin: 'x'.repeat(80) }, /"origin" is not an absolute URL: "x{60}\.\.\."/],
  ['retry as a function', { ...base, retry: () => 3 }, /"retry" must be an object, got a function/],
  ['a baseUrl with a query', { ...base, baseUrl: 'https://api.oshara.ai/?x=1' }, /"baseUrl" must not carry a query/],
  ['a baseUrl with another scheme', { ...base, baseUrl: 'ws://api.oshara.ai' }, /"baseUrl" must be an absolute http\(s\) URL/],
  ['an apiKey with a space', { ...base, apiKey: 'sk_abc def' }, /"apiKey" must be a non-empty string of printable characters/],
  ['an apiKey over plain http', { ...base, apiKey: 'sk_abc', baseUrl: 'http://oshara.internal' }, /"apiKey" would be sent in clear text.*use an https baseUrl/],
  ['a dispatcher without request()', { ...base, dispatcher: {} }, /"dispatcher" must be an object with request\(\)/],
  ['a response that is not a function', { ...base, response: {} }, /"response" must be a function/],
  ['allowedOrigins that is not an array', { ...base, allowedOrigins: 'https://partner.example' }, /"allowedOrigins" must be an array of origins/],
  ['allowedOrigins with a path', { ...base, allowedOrigins: ['https://partner.example/app'] }, /"allowedOrigins\[0\]" must be an origin without path.*use 'https:\/\/partner\.example'/],
  ['a non-boolean public', { ...base, public: 'yes' }, /"public" must be a boolean/],
  ['a route hook that is not a function', { ...base, routeOptions: { onRequest: 'auth' } }, /"routeOptions\.onRequest" must be a hook function or an array of them/]
]

// An auth hook read before the plugin that adds it is registered is undefined: registering silently would leave the route open.
const unset: Array<[string, unknown, string]> = [
  ['routeOptions.onRequest', { routeOptions: { onRequest: undefined } }, 'undefined'],
  ['routeOptions.preHandler[1]', { routeOptions: { preHandler: [async () => {}, undefined] } }, 'undefined'],
  ['routeOptions.preValidation', { routeOptions: { preValidation: null } }, 'null'],
  ['metadata', { metadata: undefined }, 'undefined'],
  ['onSession', { onSession: null }, 'null'],
  ['limits.key', { limits: { concurrency: 1, key: undefined } }, 'undefined']
]
for (const [name, options, given] of unset) {
  t.test(`an undefined or null function option fails register: ${name}`, async (t) => {
    const error = await registerError({ ...base, ...(options as object) })
    t.equal(error.code, 'FST_OSHARA_INVALID_OPTIONS')
    t.match(error.message, `option "${name}" is ${given} where a function is expected`)
    t.match(error.message, /Fix: .*app\.authenticate.*register that plugin first/)
  })
}

for (const [name, options, message] of cases) {
  t.test(`register fails on ${name}`, async (t) => {
    const error = await registerError(options)
    t.ok(error instanceof OsharaInvalidOptionsError, `${String(error)}`)
    t.equal(error.code, 'FST_OSHARA_INVALID_OPTIONS')
    t.match(error.message, message)
  })
}

t.test('createOsharaClient checks its options the same way', async (t) => {
  t.throws(() => createOsharaClient(null as never), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /"options" must be an object, got null/ })
  t.throws(() => createOsharaClient({ origin: ORIGIN, logger: console.log } as never), { message: /"logger" must be an object with info\(\) and warn\(\)/ })
  t.throws(() => createOsharaClient({ origin: ORIGIN, agent: 'a' } as never), { message: /"options\.agent" is not a known option/ })
})

t.test('the API key is never echoed in an options error', async (t) => {
  const error = await registerError({ ...base, apiKey: 'sk_live secret' })
  t.notOk(error.message.includes('secret'))
})

t.test('client cannot be combined with upstream options, and must agree on origin', async (t) => {
  const client = createOsharaClient({ origin: ORIGIN, baseUrl: 'http://127.0.0.1:9' })
  t.teardown(() => client.close())
  t.match((await registerError({ agent: 'a', client, timeoutMs: 5 })).message, /"timeoutMs" cannot be combined with client.*createOsharaClient/)
  t.match((await registerError({ agent: 'a', client, origin: 'https://other.example.com' })).message, /"origin" differs from the client's origin/)
})

t.test('a second registration with the same decorator name says how to fix it', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(osharaVoice, { ...base, path: '/one' })
  await t.rejects(async () => { await app.register(osharaVoice, { ...base, path: '/two' }) }, { code: 'FST_OSHARA_INVALID_OPTIONS', message: /"decorator" "oshara" is already taken.*decorator: 'osharaSales'/ })
})

t.test('a route without an auth hook logs one warning at startup, unless it is declared public', async (t) => {
  const warnings = async (options: Partial<OsharaVoiceOptions>): Promise<string[]> => {
    const lines: string[] = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line).msg) } } } })
    t.teardown(() => app.close())
    await app.register(osharaVoice, { ...base, ...options } as OsharaVoiceOptions)
    await app.ready()
    return lines
  }
  const open = await warnings({})
  t.equal(open.length, 1)
  t.match(open[0], /POST \/voice-token has no auth hook.*set public: true/)
  t.same(await warnings({ public: true }), [])
  t.same(await warnings({ route: false }), [])
  for (const hook of ['onRequest', 'preParsing', 'preValidation', 'preHandler']) {
    t.same(await warnings({ routeOptions: { [hook]: async () => {} } }), [], hook)
  }
})

t.test('an empty hook array is no auth hook: the route still logs the startup warning', async (t) => {
  for (const hook of ['onRequest', 'preParsing', 'preValidation', 'preHandler']) {
    const lines: string[] = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line).msg) } } } })
    t.teardown(() => app.close())
    await app.register(osharaVoice, { ...base, routeOptions: { [hook]: [] } })
    await app.ready()
    t.equal(lines.length, 1, hook)
    t.match(lines[0], /POST \/voice-token has no auth hook/, hook)
  }
})

// Node's timers wait at most 2^31 - 1 ms; a longer delay fires at once (TimeoutOverflowWarning),
// which made every POST answer 504 FST_OSHARA_TIMEOUT within milliseconds.
const MAX_TIMER_MS = 2_147_483_647
const durations: Array<[string, Record<string, unknown>]> = [
  ['timeoutMs', { timeoutMs: MAX_TIMER_MS + 1 }],
  ['deadlineMs', { deadlineMs: 3e9 }],
  ['retry.minDelayMs', { retry: { minDelayMs: 3e9 } }],
  ['retry.maxDelayMs', { retry: { maxDelayMs: 3e9 } }],
  ['retry.maxRetryAfterMs', { retry: { maxRetryAfterMs: 3e9 } }],
  ['breaker.cooldownMs', { breaker: { cooldownMs: 3e9 } }],
  ['limits.holdMs', { limits: { concurrency: 1, holdMs: 3e9 } }],
  ['limits.storeTimeoutMs', { limits: { concurrency: 1, storeTimeoutMs: 3e9 } }],
  ['quota.storeTimeoutMs', { quota: { window: 'day', sessions: 1, storeTimeoutMs: 3e9 } }],
  ['tracking.firstCheckMs', { apiKey: 'sk_test', tracking: { firstCheckMs: 3e9 } }],
  ['tracking.maxCheckIntervalMs', { apiKey: 'sk_test', tracking: { maxCheckIntervalMs: 3e9 } }],
  ['tracking.maxTrackMs', { apiKey: 'sk_test', tracking: { maxTrackMs: 3e9 } }],
  ['tracking.leaseMs', { apiKey: 'sk_test', tracking: { leaseMs: 3e9 } }]
]
t.test('a millisecond option longer than a Node.js timer can wait fails register, naming the option', async (t) => {
  for (const [name, options] of durations) {
    const error = await registerError({ ...base, ...options })
    t.equal(error.code, 'FST_OSHARA_INVALID_OPTIONS', name)
    t.match(error.message, `option "${name}" must be an integer between`, name)
    t.match(error.message, /and 2147483647 ms \(about 24\.8 days, the longest a Node\.js timer waits\), got number/, name)
  }
  t.match((await registerError({ ...base, timeoutMs: 3e9, deadlineMs: 3e9 })).message, /"timeoutMs" must be an integer between 1 and 2147483647 ms/)
  t.throws(() => createOsharaClient({ origin: ORIGIN, deadlineMs: 3e9 }), { code: 'FST_OSHARA_INVALID_OPTIONS', message: /"deadlineMs" must be an integer between 1 and 2147483647 ms/ })
  t.match((await registerError({ ...base, tools: { secret: 'a-good-secret-0123456789', timeoutMs: 3e9 } })).message, /"tools\.timeoutMs" must be an integer between 1 and 10000 ms/)
})

t.test('timeoutMs and deadlineMs of 2147483647 ms, the longest timer, mint a session', async (t) => {
  const emulator = await startEmulator(t)
  const overflows: Error[] = []
  const onWarning = (warning: Error): void => { if (warning.name === 'TimeoutOverflowWarning') overflows.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const app = await buildApp(t, emulator, { timeoutMs: MAX_TIMER_MS, deadlineMs: MAX_TIMER_MS, public: true })
  const response = await postToken(app)
  t.equal(response.statusCode, 200, response.body)
  t.type(response.json().token, 'string')
  t.same(overflows, [])
})

t.test('an integer option\'s fix states its real default, or none when it has none', async (t) => {
  const tools = { secret: 'a-good-secret-0123456789' }
  const cases: Array<[string, Record<string, unknown>, string | undefined]> = [
    ['limits.concurrency', { limits: { concurrency: 0 } }, undefined],
    ['limits.global', { limits: { concurrency: 1, global: 0 } }, undefined],
    ['limits.holdMs', { limits: { concurrency: 1, holdMs: 0 } }, "(default: the session's expires_in_seconds; with session tracking, tracking.maxTrackMs)"],
    ['limits.storeTimeoutMs', { limits: { concurrency: 1, storeTimeoutMs: 0 } }, '(default 1000)'],
    ['quota.storeTimeoutMs', { quota: { window: 'day', sessions: 1, storeTimeoutMs: 0 } }, '(default 1000)'],
    ['timeoutMs', { timeoutMs: 0 }, '(default 10000)'],
    ['deadlineMs', { deadlineMs: 0 }, '(default 15000)'],
    ['retry.retries', { retry: { retries: 11 } }, '(default 2)'],
    ['retry.minDelayMs', { retry: { minDelayMs: -1 } }, '(default 250)'],
    ['retry.maxDelayMs', { retry: { maxDelayMs: -1 } }, '(default 2000)'],
    ['retry.maxRetryAfterMs', { retry: { maxRetryAfterMs: -1 } }, '(default 5000)'],
    ['breaker.failureThreshold', { breaker: { failureThreshold: 0 } }, '(default 5)'],
    ['breaker.cooldownMs', { breaker: { cooldownMs: 0 } }, '(default 10000)'],
    ['tracking.firstCheckMs', { apiKey: 'sk_test', tracking: { firstCheckMs: 0 } }, '(default 15000)'],
    ['tracking.maxCheckIntervalMs', { apiKey: 'sk_test', tracking: { maxCheckIntervalMs: 0 } }, '(default 120000)'],
    ['tracking.maxTrackMs', { apiKey: 'sk_test', tracking: { maxTrackMs: 0 } }, '(default 14400000)'],
    ['tracking.concurrency', { apiKey: 'sk_test', tracking: { concurrency: 0 } }, '(default 4)'],
    ['tracking.leaseMs', { apiKey: 'sk_test', tracking: { leaseMs: 0 } }, '(default 60000)'],
    ['routeOptions.bodyLimit', { routeOptions: { bodyLimit: 0 } }, '(default 16384)'],
    ['tools.timeoutMs', { tools: { ...tools, timeoutMs: 0 } }, '(default 8000)']
  ]
  for (const [name, options, fallback] of cases) {
    const error = await registerError({ ...base, ...options })
    t.match(error.message, `option "${name}" must be an integer`, name)
    const fix = error.message.slice(error.message.indexOf('Fix: '))
    if (fallback === undefined) t.notMatch(fix, /default/, `${name}: ${fix}`)
    else t.ok(fix.endsWith(fallback), `${name}: ${fix}`)
  }
})

t.test('valid edge cases register', async (t) => {
  const agent = new Agent()
  t.teardown(() => agent.close())
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(osharaVoice, {
    origin: 'http://localhost:3000/',
    agent: 'support-bot',
    apiKey: 'sk_local',
    baseUrl: 'http://127.0.0.1:1/prefix/',
    dispatcher: agent,
    retry: false,
    breaker: false,
    clientFields: ['language', 'language'],
    limits: { concurrency: 2, global: 10, holdMs: 2_147_483_647, store, key: (request) => request.ip, onStoreError: 'allow', storeTimeoutMs: 50 },
    routeOptions: {
      config: {},
      logLevel: 'silent',
      constraints: { host: 'voice.example.com' },
      schema: {
        tags: ['voice'],
        summary: 'Mint',
        description: 'Mints a voice session',
        operationId: 'createVoiceToken',
        security: [{ bearer: [] }, {}],
        hide: false,
        deprecated: false,
        externalDocs: { url: 'https://docs.example.com/voice', description: 'Docs' },
        'x-internal': true
      }
    },
    decorator: 'voice',
    allowedOrigins: ['https://partner.example/'],
    public: true
  })
  await app.ready()
  t.ok(app.hasDecorator('voice'))
})
