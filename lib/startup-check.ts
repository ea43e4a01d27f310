import type { FastifyInstance } from 'fastify'
import type { OsharaClient } from './client/client.js'
import type { OsharaError } from './errors.js'

/**
 * `checkOnReady`: once the app is ready, without delaying it, one `GET /api/agents/{slug}/appearance/`
 * per static slug with the configured `Origin`. Oshara documents that endpoint as public, gated by
 * `allowed_origins` like the session endpoint, and free of side effects: a 404 or 403 here is the
 * 502 every session would get. Findings are logged at warn with the fix; nothing is thrown.
 */
export function checkAgentsOnReady (fastify: FastifyInstance, client: OsharaClient, slugs: ReadonlySet<string>): void {
  const abort = new AbortController()
  let checks: Promise<unknown> = Promise.resolve()
  fastify.addHook('onReady', (done) => {
    checks = Promise.all([...slugs].map((slug) => checkAgent(fastify, client, slug, abort.signal)))
    done()
  })
  // Before the client's pool closes (onClose): a check cut short by closing is not a finding.
  fastify.addHook('preClose', (done) => {
    abort.abort()
    checks.then(() => done(), done)
  })
}

async function checkAgent (fastify: FastifyInstance, client: OsharaClient, slug: string, signal: AbortSignal): Promise<void> {
  try {
    const appearance = await client.getAppearance(slug, { signal })
    fastify.log.debug({ agent: slug, max_call_seconds: appearance.max_call_seconds }, 'oshara: agent checked: it exists and allows this origin')
  } catch (error) {
    if (!signal.aborted) warnOf(fastify, client, slug, error as OsharaError)
  }
}

function warnOf (fastify: FastifyInstance, client: OsharaClient, slug: string, error: OsharaError): void {
  const { baseUrl, origin } = client
  const fields = { agent: slug, baseUrl, code: error.code, upstreamStatus: error.upstreamStatus, detail: error.detail }
  if (error.upstreamStatus === 404) {
    fastify.log.warn(fields, `oshara: agent "${slug}" was not found at ${baseUrl} (its appearance answered 404): sessions for it will fail. ` +
      'Check the agent slug (the agent or agents option) against the Oshara dashboard, that the character is active, and that baseUrl is the Oshara API root.')
  } else if (error.upstreamStatus === 403) {
    fastify.log.warn({ ...fields, origin }, `oshara: origin ${origin} is not in the allowed_origins of agent "${slug}" (its appearance answered 403): sessions for it will fail. ` +
      `Add ${origin} to the character's allowed_origins (Oshara dashboard), or set the origin option to one it lists.`)
  } else if (error.upstreamStatus === undefined) {
    fastify.log.warn(fields, `oshara: could not reach baseUrl ${baseUrl} to check agent "${slug}" (${String(error.detail)}). ` +
      'Check that baseUrl is the Oshara API root and that this server can reach it.')
  } else {
    fastify.log.warn(fields, `oshara: the startup check of agent "${slug}" at ${baseUrl} failed (${error.code}); sessions may fail the same way.`)
  }
}
