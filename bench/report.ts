import { writeFile } from 'node:fs/promises'
import { type Machine, median, mib, REQUEST_BODY, SHORT_LABELS, VARIANT_LABELS, type Variant } from './harness.js'

export type Logging = 'off' | 'info'

/** One measured load of one server. */
export interface Measurement {
  variant: Variant
  logging: Logging
  round: number
  reqPerSec: number
  p50: number
  p99: number
  /** Requests answered with anything but 2xx, plus socket errors and timeouts. */
  failures: number
  /** CPU used during the measurement, in % of one core. */
  serverCpu: number
  /** Server CPU time per answered request, microseconds: its cost, whatever the contention. */
  serverCpuPerRequest: number
  emulatorCpu: number
  loadCpu: number
  redisCpu: number
  /** The rest of the machine's busy time: processes that are not part of the run. */
  otherCpu: number
  /** 1, or how many times it was measured because other processes took CPU (the least disturbed kept). */
  attempts: number
  /** Most sessions the emulator held at once during the measurement. */
  emulatorSessions: number
}

export interface Summary {
  variant: Variant
  logging: Logging
  reqPerSec: number
  p50: number
  p99: number
  rounds: number[]
  failures: number
  serverCpu: number
  serverCpuPerRequest: number
  emulatorCpu: number
  loadCpu: number
  redisCpu: number
  otherCpu: number
  /** Rounds measured more than once. */
  repeated: number
  /** Sessions the server minted over the whole run (warmups included). */
  served: number
  peakRss: number
}

export interface GrowthStep {
  step: number
  reqPerSec: number
  p99: number
  sessions: number
  heapUsed: number
}

export interface RunReport {
  machine: Machine
  command: string
  startedAt: string
  durationSeconds: number
  settings: { rounds: number, duration: number, warmup: number, connections: number, trimMs: number, maxOthers: number, budgetSeconds: number, redis: string }
  measurements: Measurement[]
  summaries: Summary[]
  emulatorPeakRss: number
  growth: GrowthStep[]
  notes: string[]
}

interface Ratio {
  name: string
  logging: Logging
  numerator: Summary
  denominator: Summary
  /** Least acceptable req/s ratio, when the issue sets one. */
  target: number | undefined
}

const RATIOS: Array<{ name: string, numerator: Variant, denominator: Variant, target: number | undefined }> = [
  { name: 'A/B (default options)', numerator: 'plugin', denominator: 'undici', target: 0.95 },
  { name: 'A/B (memory limiter)', numerator: 'plugin-memory', denominator: 'undici', target: 0.9 },
  { name: 'A/B (Redis limiter)', numerator: 'plugin-redis', denominator: 'undici', target: undefined },
  { name: 'A/C (default options)', numerator: 'plugin', denominator: 'fetch', target: 3 }
]

const fixed = (value: number, digits = 2): string => Number.isFinite(value) ? value.toFixed(digits) : 'n/a'
const whole = (value: number): string => Number.isFinite(value) ? String(Math.round(value)) : 'n/a'
const percent = (value: number): string => `${Math.round(value * 100)}%`
const signed = (value: number): string => `${value >= 0 ? '+' : '−'}${Math.abs(Math.round(value * 100))}%`

function ratios (report: RunReport): Ratio[] {
  const find = (variant: Variant, logging: Logging): Summary | undefined =>
    report.summaries.find((s) => s.variant === variant && s.logging === logging)
  const list: Ratio[] = []
  for (const logging of ['off', 'info'] as const) {
    for (const { name, numerator, denominator, target } of RATIOS) {
      const a = find(numerator, logging)
      const b = find(denominator, logging)
      if (a !== undefined && b !== undefined) list.push({ name, logging, numerator: a, denominator: b, target })
    }
  }
  return list
}

function resultsTable (report: RunReport): string[] {
  const lines = [
    '| variant | logging | req/s | p50 ms | p99 ms | req/s per round | failed | server CPU µs/req | CPU %: server / emulator / load-gen / redis / others | server peak RSS |',
    '| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |'
  ]
  for (const s of report.summaries) {
    lines.push(`| ${VARIANT_LABELS[s.variant]} | ${s.logging} | ${whole(s.reqPerSec)} | ${s.p50} | ${s.p99} | ${s.rounds.map(whole).join(' / ')}${s.repeated > 0 ? ` (${s.repeated} repeated)` : ''} | ${s.failures} | ` +
      `${s.serverCpuPerRequest} | ${s.serverCpu} / ${s.emulatorCpu} / ${s.loadCpu} / ${s.redisCpu} / ${s.otherCpu} | ${mib(s.peakRss)} MiB |`)
  }
  return lines
}

function ratioTable (list: Ratio[]): string[] {
  const lines = [
    '| ratio | logging | req/s | p50 latency | p99 latency | server CPU/req (denominator/numerator) | target (req/s) | met |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | --- |'
  ]
  for (const r of list) {
    const a = r.numerator
    const b = r.denominator
    lines.push(`| ${r.name} | ${r.logging} | ${fixed(a.reqPerSec / b.reqPerSec)} | ${fixed(a.p50 / b.p50)} | ${fixed(a.p99 / b.p99)} | ` +
      `${fixed(b.serverCpuPerRequest / a.serverCpuPerRequest)} | ${r.target === undefined ? '—' : `≥ ${r.target}`} | ` +
      `${r.target === undefined ? '—' : a.reqPerSec / b.reqPerSec >= r.target ? 'yes' : 'no'} |`)
  }
  return lines
}

function inShort (report: RunReport, list: Ratio[]): string | undefined {
  const find = (variant: Variant): Summary | undefined => report.summaries.find((s) => s.variant === variant && s.logging === 'off')
  const a = find('plugin')
  const b = find('undici')
  if (a === undefined || b === undefined) return undefined
  const parts = list.filter((r) => r.logging === 'off' && r.target !== undefined).map((r) => {
    const value = r.numerator.reqPerSec / r.denominator.reqPerSec
    return `${r.name} ${fixed(value)} (target ≥ ${r.target}: ${value >= (r.target as number) ? 'met' : 'missed'})`
  })
  const extra = (variant: Variant): string | undefined => {
    const s = find(variant)
    return s === undefined ? undefined : `${SHORT_LABELS[variant]} ${s.serverCpuPerRequest - a.serverCpuPerRequest >= 0 ? '+' : '−'}${Math.abs(s.serverCpuPerRequest - a.serverCpuPerRequest)} µs`
  }
  const limiters = [extra('plugin-memory'), extra('plugin-redis')].filter((text) => text !== undefined)
  return `**In short** (logging off, medians): on req/s ${parts.join(', ')}. Per request the plugin's server spends ${a.serverCpuPerRequest} µs of CPU ` +
    `against the floor's ${b.serverCpuPerRequest} µs: ${a.serverCpuPerRequest - b.serverCpuPerRequest} µs more, a server-only ratio of ` +
    `${fixed(b.serverCpuPerRequest / a.serverCpuPerRequest)}, which is what A/B tends to when the server, not the emulator or the load generator, is what limits throughput.` +
    `${limiters.length > 0 ? ` The limiters add, per request: ${limiters.join(', ')}.` : ''}`
}

function meaning (report: RunReport, list: Ratio[]): string[] {
  const paragraphs: string[] = []
  const cores = report.machine.cores
  const summary = inShort(report, list)
  if (summary !== undefined) paragraphs.push(summary)
  for (const logging of ['off', 'info'] as const) {
    const mine = list.filter((r) => r.logging === logging)
    if (mine.length === 0) continue
    const sentences = mine.map((r) => {
      const value = r.numerator.reqPerSec / r.denominator.reqPerSec
      const cost = r.denominator.serverCpuPerRequest / r.numerator.serverCpuPerRequest
      const verdict = r.target === undefined ? '' : ` (target ≥ ${r.target}: ${value >= r.target ? 'met' : 'missed'})`
      return `${r.name} is ${fixed(value)} on req/s${verdict}, ${fixed(r.numerator.p50 / r.denominator.p50)}× the p50 and ` +
        `${fixed(r.numerator.p99 / r.denominator.p99)}× the p99 latency; per request the server spends ` +
        `${r.numerator.serverCpuPerRequest} µs of CPU against ${r.denominator.serverCpuPerRequest} µs (server-only ratio ${fixed(cost)})`
    })
    paragraphs.push(`**Logging ${logging === 'off' ? 'off' : 'at info, to a file'}.** ${sentences.join('. ')}.`)
  }
  const all = report.measurements
  if (all.length > 0) {
    const ours = median(all.map((m) => m.serverCpu + m.emulatorCpu + m.loadCpu + m.redisCpu))
    const others = median(all.map((m) => m.otherCpu))
    const worst = Math.max(...all.map((m) => m.otherCpu))
    const total = median(all.map((m) => m.serverCpu + m.emulatorCpu + m.loadCpu + m.redisCpu + m.otherCpu))
    const text = [`**Contention.** The machine has ${cores * 100}% of CPU (${cores} cores). During a measurement the run's own processes ` +
      `(server, emulator, load generator, Redis) used a median of ${ours}%, and processes outside the run ${others}% (at worst ${worst}%); ` +
      `the machine was busy ${total}% in all.`]
    if (total >= cores * 100 * 0.85) {
      text.push('It was saturated, so throughput is roughly the CPU there is ÷ (server + emulator + load-generator CPU per request): ' +
        'the emulator and load-generator share is the same for every variant and dilutes server differences, pulling every req/s ratio ' +
        'toward 1 (A/B looks better, A/C worse, than with each process on its own cores).')
    }
    if (others >= 10 || worst >= 50) {
      text.push('Work outside the run took CPU too, unevenly, which adds noise to req/s and latency beyond what alternating rounds removes.')
    }
    const bound = report.summaries.filter((s) => s.logging === 'off' && s.serverCpu >= 90)
    const unbound = report.summaries.filter((s) => s.logging === 'off' && s.serverCpu < 90)
    if (bound.length > 0) {
      text.push(`With logging off, the server of ${bound.map((s) => `${SHORT_LABELS[s.variant]} (${s.serverCpu}%)`).join(', ')} ran at or near one full core: ` +
        'a Node server runs its JavaScript on one thread, so those variants were bound by their own CPU cost.' +
        (unbound.length > 0
          ? ` ${unbound.map((s) => `${SHORT_LABELS[s.variant]} (${s.serverCpu}%)`).join(', ')} had CPU to spare and ` +
            'waited on the other processes (emulator, load generator, Redis) and the kernel instead, so their req/s understate what those servers could do alone.'
          : ''))
    }
    const repeated = all.filter((m) => m.attempts > 1).length
    if (repeated > 0) {
      text.push(`${repeated} of ${all.length} measurements were taken again because processes outside the run took more than ` +
        `${report.settings.maxOthers}% of a core; the least disturbed attempt is the one shown.`)
    }
    text.push('The server CPU µs/req column, measured inside each server, and the server-only ratio derived from it, are the steadier comparison of the servers themselves.')
    paragraphs.push(text.join(' '))
  }
  const cost = (variant: Variant): string | undefined => {
    const off = report.summaries.find((s) => s.variant === variant && s.logging === 'off')
    const info = report.summaries.find((s) => s.variant === variant && s.logging === 'info')
    if (off === undefined || info === undefined) return undefined
    return `${SHORT_LABELS[variant]} from ${off.serverCpuPerRequest} to ${info.serverCpuPerRequest} µs/req ` +
      `(${signed(info.serverCpuPerRequest / off.serverCpuPerRequest - 1)}; req/s ${signed(info.reqPerSec / off.reqPerSec - 1)})`
  }
  const logCosts = (['plugin', 'plugin-memory', 'plugin-redis', 'undici', 'fetch'] as const).map(cost).filter((text) => text !== undefined)
  if (logCosts.length > 0) {
    paragraphs.push(`**Logging cost.** pino at info with synchronous file writes (Fastify's \`logger.file\`) took the server CPU per request of ${logCosts.join(', ')}. ` +
      'A writes three lines per request (incoming request, "oshara: session created", request completed); B and C write two.')
  }
  const memory = report.summaries.find((s) => s.variant === 'plugin-memory' && s.logging === 'off')
  const plain = report.summaries.find((s) => s.variant === 'plugin' && s.logging === 'off')
  if (memory !== undefined && plain !== undefined && memory.peakRss > plain.peakRss + 20 * 2 ** 20) {
    const grown = memory.peakRss - plain.peakRss
    paragraphs.push(`**Memory.** The memory store's server peaked ${mib(grown)} MiB above the plain plugin's: it minted ${memory.served} sessions ` +
      'and nothing released them (no `DELETE`), so each slot stays until its session\'s `expires_in_seconds` (3600 s) passes — ' +
      `about ${whole(grown / memory.served)} bytes of RSS per held slot. The Redis store keeps them in Redis instead.`)
  }
  const failures = report.summaries.filter((s) => s.failures > 0)
  if (failures.length > 0) {
    paragraphs.push(`**Failures.** ${failures.map((s) => `${VARIANT_LABELS[s.variant]} (logging ${s.logging}): ${s.failures}`).join('; ')} ` +
      'requests were not answered 2xx or failed: those figures are not comparable.')
  }
  const first = report.growth[0]
  const last = report.growth[report.growth.length - 1]
  const most = Math.max(0, ...report.measurements.map((m) => m.emulatorSessions))
  const emulatorCost = median(report.measurements.map((m) => m.emulatorCpu * 10_000 / m.reqPerSec))
  const floorCost = report.summaries.find((s) => s.variant === 'undici' && s.logging === 'off')?.serverCpuPerRequest
  const text = [`**The emulator.** It spent a median of ${whole(emulatorCost)} µs of CPU per request (it signs a JWT and draws random ids for each)` +
    `${floorCost === undefined ? '' : `, ${emulatorCost >= floorCost ? 'more than' : `${percent(emulatorCost / floorCost)} of`} what the floor server B spends`}, ` +
    'on the same cores, for every variant alike: one more reason the req/s ratios sit closer to 1 than the server-only ratios.']
  if (first !== undefined && last !== undefined) {
    text.push(`Loaded directly and never emptied, it went from ${whole(first.reqPerSec)} req/s (${first.sessions} sessions stored) to ` +
      `${whole(last.reqPerSec)} req/s (${last.sessions} stored, heap ${mib(last.heapUsed)} MiB): ` +
      (last.reqPerSec < first.reqPerSec * 0.8
        ? 'what it stores slows it down (each mint counts the active sessions by scanning all stored ones), so within one run the later, and the faster, variants would meet a slower upstream.'
        : 'what it stores does not slow it down measurably over this many requests.'))
  }
  text.push(report.settings.trimMs > 0
    ? `This run emptied it every ${report.settings.trimMs} ms (at most ${most} sessions stored at once), so every variant met the same emulator.`
    : `This run never emptied it (up to ${most} sessions stored): compare variants with care.`)
  paragraphs.push(text.join(' '))
  return paragraphs
}

/** Renders the run as Markdown, writes it to `path`, and returns it. */
export async function writeResults (report: RunReport, path: string): Promise<string> {
  const { machine: box, settings } = report
  const list = ratios(report)
  const lines = [
    '# Benchmarks: the plugin against the floor and against the seed-style route',
    '',
    `Written by \`${report.command}\` (bench/run.ts) on ${report.startedAt}; the run took ${report.durationSeconds} s. Do not edit by hand: run it again.`,
    '',
    '## Machine and method',
    '',
    `- Machine: ${box.cores} cores, ${box.cpu}, ${box.memoryGiB} GiB, ${box.os}; Node ${box.node}.`,
    `- Command: \`${report.command}\` (\`node --import tsx bench/run.ts\`).`,
    '- Each server under test (bench/servers.ts) and the Oshara emulator (bench/emulator-process.ts) run in their own process; autocannon runs as a library in the parent. Every server calls the same emulator.',
    `- The emulator is emptied of stored sessions and recorded requests ${settings.trimMs > 0 ? `every ${settings.trimMs} ms` : 'never'} (see "The emulator" below). Before each measurement the run waits (up to 10 s) until processes outside it take at most ${settings.maxOthers}% of a core; a measurement they disturbed beyond that anyway is taken again, at most twice; waits and repeats stay within a ${settings.budgetSeconds} s budget for the run, and the least disturbed attempt is kept.`,
    `- ${settings.rounds} rounds; in each, every server gets ${settings.warmup} s of warmup then ${settings.duration} s measured, in turn (A, A + memory limiter, A + Redis limiter, B, C, then again), ${settings.connections} connections, \`POST /voice-token\` with \`${REQUEST_BODY}\`. Figures are medians over the rounds. All servers run once with logging off, then once with pino at \`info\` writing to a file in bench/.out/logs/.`,
    `- A: the plugin, \`{ origin, agent, baseUrl }\`; with \`limits: { concurrency: 1000000 }\` on the memory store, then on \`RedisSessionStore\` (${settings.redis}). All load comes from one IP, one limiter key: nothing is refused, every request reserves and binds a slot.`,
    '- B: a hand-written Fastify route: one undici `Pool`, `Pool.request` with the plugin\'s payload and headers, `body.json()`, the same reply fields through a response schema (no timeout, retry, or body validation).',
    `- C: the route as Oshara's docs show it: global \`fetch\` per request (Node ${box.node}'s bundled undici and its global dispatcher), \`r.json()\`, the same reply fields.`,
    `- CPU is in % of one core, measured in each process over the measured seconds; server CPU µs/req is the server's CPU time per 2xx answer. Latency is autocannon's, in whole milliseconds. Peak RSS is \`process.resourceUsage().maxRSS\` and includes the tsx loader (the same for every variant). The emulator's peak RSS: ${mib(report.emulatorPeakRss)} MiB.`,
    '- Where the time goes: `node --import tsx bench/profile.ts` runs A and B under `node --cpu-prof` and writes bench/.out/profile-summary.md.',
    '',
    '## Results',
    '',
    ...resultsTable(report),
    '',
    '## Ratios',
    '',
    'Numerator over denominator: req/s above 1 and latency below 1 favour the numerator. The server CPU/req column is the denominator\'s CPU per request over the numerator\'s: the req/s ratio the servers would show if each had the machine to itself.',
    '',
    ...ratioTable(list),
    '',
    '## What it means',
    '',
    ...meaning(report, list).flatMap((paragraph) => [paragraph, ''])
  ]
  if (report.growth.length > 0) {
    lines.push('## Emulator growth check', '', 'The emulator alone, loaded directly for 3 s at a time and never emptied:', '',
      '| step | sessions stored after | req/s | p99 ms | heap MiB |', '| ---: | ---: | ---: | ---: | ---: |',
      ...report.growth.map((g) => `| ${g.step} | ${g.sessions} | ${whole(g.reqPerSec)} | ${g.p99} | ${mib(g.heapUsed)} |`), '')
  }
  if (report.notes.length > 0) lines.push('## Notes', '', ...report.notes.map((note) => `- ${note}`), '')
  const markdown = lines.join('\n')
  await writeFile(path, markdown)
  return markdown
}
