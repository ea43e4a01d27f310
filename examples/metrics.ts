/**
 * Prometheus metrics from `fastify.oshara.stats()`: `GET /metrics` in the text format. Each metric
 * reads the counters when scraped (stats() is cheap: no store or upstream call), so nothing runs
 * between scrapes.
 *
 *   node --import tsx examples/metrics.ts
 *   curl -X POST http://127.0.0.1:3000/voice-token && curl http://127.0.0.1:3000/metrics
 *
 * prom-client is this example's own dependency (`npm install prom-client`), not the plugin's.
 * Serve /metrics where only your scraper reaches it (an internal port, or behind auth).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { Counter, Gauge, Registry } from 'prom-client'
// In your app: import osharaVoice, { type OsharaStats } from 'fastify-oshara-voice'
import osharaVoice, { type OsharaStats } from '../lib/index.js'
import { isMain, runWithEmulator } from './run-with-emulator.js'

export interface MetricsOptions {
  origin: string
  baseUrl?: string
  logger?: boolean
}

const BREAKER_STATES = ['closed', 'open', 'half-open'] as const

/** Registers the plugin's metrics on `registry`, read from `stats()` on each scrape. */
export function osharaMetrics (registry: Registry, stats: () => OsharaStats): void {
  // Not in prom-client's global registry: each app has its own.
  const registers: Registry[] = []
  const counter = (name: string, help: string, value: (snapshot: OsharaStats) => number): void => {
    // A counter set from the snapshot: reset, then increased to its value.
    registry.registerMetric(new Counter({ name, help, registers, collect () { this.reset(); this.inc(value(stats())) } }))
  }
  counter('oshara_sessions_minted_total', 'Sessions Oshara created (route and decorator).', (s) => s.minted)
  counter('oshara_upstream_retries_total', 'Upstream retries made by the session client.', (s) => s.retries)
  counter('oshara_sessions_ended_total', 'Tracked sessions found ended.', (s) => s.ended)
  counter('oshara_quota_refusals_total', 'Session requests refused by the usage quota.', (s) => s.quotaRefusals)
  registry.registerMetric(new Counter({
    name: 'oshara_session_failures_total',
    help: 'Failed session requests by error code.',
    labelNames: ['code'],
    registers,
    collect () {
      this.reset()
      for (const [code, count] of Object.entries(stats().failed)) this.inc({ code }, count)
    }
  }))
  registry.registerMetric(new Gauge({
    name: 'oshara_breaker_state',
    help: 'The circuit breaker state: 1 for the current one.',
    labelNames: ['state'],
    registers,
    collect () {
      const { breakerState } = stats()
      for (const state of BREAKER_STATES) this.set({ state }, state === breakerState ? 1 : 0)
    }
  }))
  registry.registerMetric(new Gauge({
    name: 'oshara_active_slots',
    help: 'Live concurrent-session limiter slots (memory store).',
    registers,
    collect () {
      const { activeSlots } = stats()
      if (activeSlots !== undefined) this.set(activeSlots)
    }
  }))
}

export async function build ({ origin, baseUrl, logger = false }: MetricsOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  await app.register(osharaVoice, {
    origin,
    agent: 'support-bot',
    ...(baseUrl === undefined ? {} : { baseUrl }),
    limits: { concurrency: 2 }
  })
  const registry = new Registry()
  osharaMetrics(registry, () => app.oshara.stats())
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
  return app
}

if (isMain(import.meta.url)) await runWithEmulator('metrics', build, (url) => `curl -X POST ${url}/voice-token && curl ${url}/metrics`)
