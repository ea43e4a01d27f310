import { invalidOption } from '../errors.js'

/**
 * What the Redis stores need of an ioredis `Redis` or `Cluster` client. Structural, so that the
 * published types do not require ioredis (an optional peer dependency) to be installed.
 */
export interface RedisScriptingClient {
  defineCommand (name: string, definition: { lua: string, numberOfKeys?: number }): void
}

/** The client with a command for each script: keys first, then arguments. */
export type ScriptedClient<Scripts> = Record<keyof Scripts, (...keysThenArgs: Array<string | number>) => Promise<unknown>>

/**
 * Checks the `client` and `prefix` options of the Redis store named `store`, then defines `scripts`
 * on the client unless an earlier store (or another copy of this package) already did.
 */
export function scriptedClient<Scripts extends Record<string, { numberOfKeys: number, lua: string }>> (
  store: string, client: RedisScriptingClient, prefix: string, scripts: Scripts
): ScriptedClient<Scripts> {
  if (typeof client?.defineCommand !== 'function') {
    throw invalidOption(`${store} client`, 'must be an ioredis Redis or Cluster client', `pass new ${store}({ client: new Redis(process.env.REDIS_URL) }); you own the client and close it`)
  }
  if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
    throw invalidOption(`${store} prefix`, 'must be a non-empty string without { or } (it becomes the Redis Cluster hash tag)', "e.g. prefix: 'myapp:oshara:', or leave it out")
  }
  for (const [name, definition] of Object.entries(scripts)) {
    if (typeof (client as unknown as Partial<Record<string, unknown>>)[name] !== 'function') {
      client.defineCommand(name, definition)
    }
  }
  return client as unknown as ScriptedClient<Scripts>
}
