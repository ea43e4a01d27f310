// Summarizes the V8 CPU profiles a `BENCH_CPU_PROF=<dir> npm run bench` wrote, a folder per server
// (the main thread's profile in each: the one that served requests), as markdown:
//   node --import tsx bench/profile.ts <dir> [top] > bench/PROFILE.md
// First the CPU time per request by where the code comes from (the plugin, Fastify, undici, Node,
// GC, ...), a column per server; then each server's `top` functions (default 20) by self time.
// Idle time is left out, and so is what ran before the first request (startup, module loading).
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** Self time, µs, by origin and by function, of one server's busiest thread from its first request on. */
interface Summary {
  byOrigin: Map<string, number>
  byFunction: Map<string, number>
  total: number
}

const [dir = '', topArg = '20'] = process.argv.slice(2)
if (dir === '') throw new Error('usage: node --import tsx bench/profile.ts <dir> [top]')
const TOP = Number(topArg)

/** Where a function comes from, by its script's URL. */
function origin (url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native: V8 builtins, syscalls)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1] as string
  if (url.includes('/dist/')) return 'the plugin (dist/)'
  if (url.startsWith('node:')) return 'Node.js (JavaScript)'
  return 'bench/ (the routes of B and C, the metadata function A calls)'
}

function short (url: string): string {
  return url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\/esm\//, 'dist/').replace(/^file:\/\/.*\/bench\//, 'bench/')
}

function summarize (profile: Profile): Summary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const inRoute = (id: number): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      if (byId.get(at)?.callFrame.url.includes('fastify/lib/route.js') === true) return true
    }
    return false
  }
  const summary: Summary = { byOrigin: new Map(), byFunction: new Map(), total: 0 }
  let started = false
  profile.samples.forEach((id, index) => {
    started ||= inRoute(id)
    const { functionName, url, lineNumber } = (byId.get(id) as ProfileNode).callFrame
    if (!started || functionName === '(idle)') return
    const us = profile.timeDeltas[index] ?? 0
    summary.total += us
    const from = origin(url, functionName)
    summary.byOrigin.set(from, (summary.byOrigin.get(from) ?? 0) + us)
    const where = `${functionName || '(anonymous)'}${url === '' ? '' : ` ${short(url)}:${lineNumber + 1}`}`
    summary.byFunction.set(where, (summary.byFunction.get(where) ?? 0) + us)
  })
  return summary
}

/** The server's busiest thread (tsx's loader thread writes a profile of its own). */
async function serverSummary (folder: string): Promise<Summary> {
  let busiest: Summary = { byOrigin: new Map(), byFunction: new Map(), total: 0 }
  for (const file of (await readdir(folder)).filter((name) => name.endsWith('.cpuprofile'))) {
    const summary = summarize(JSON.parse(await readFile(join(folder, file), 'utf8')) as Profile)
    if (summary.total > busiest.total) busiest = summary
  }
  return busiest
}

const requests = JSON.parse(await readFile(join(dir, 'requests.json'), 'utf8')) as Record<string, number>
const servers = (await readdir(dir, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name)
const summaries = new Map<string, Summary>()
for (const server of servers) summaries.set(server, await serverSummary(join(dir, server)))

const perRequest = (server: string, us: number): string => (us / Math.max(1, requests[server] ?? 0)).toFixed(1)
const origins = new Map<string, number>()
for (const { byOrigin } of summaries.values()) for (const [from, us] of byOrigin) origins.set(from, (origins.get(from) ?? 0) + us)

const out: string[] = [
  '# CPU profiles',
  '',
  `From V8 CPU profiles of each server (\`--cpu-prof\`), from its first request to its exit: CPU µs per request answered (${servers.map((server) => `${server} ${requests[server] ?? 0}`).join(', ')} requests), by where the code comes from. Profiling itself adds to every figure.`,
  '',
  `| from | ${servers.join(' | ')} |`,
  `| --- | ${servers.map(() => '---:').join(' | ')} |`,
  `| all | ${servers.map((server) => perRequest(server, (summaries.get(server) as Summary).total)).join(' | ')} |`
]
for (const [from] of [...origins].sort((a, b) => b[1] - a[1])) {
  const cells = servers.map((server) => perRequest(server, (summaries.get(server) as Summary).byOrigin.get(from) ?? 0))
  if (cells.some((cell) => cell !== '0.0')) out.push(`| ${from} | ${cells.join(' | ')} |`)
}
for (const server of servers) {
  const { byFunction } = summaries.get(server) as Summary
  out.push('', `## ${server}: the ${TOP} functions with the most self time`, '', '| µs/request | function |', '| ---: | --- |')
  for (const [where, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, TOP)) out.push(`| ${perRequest(server, us)} | \`${where}\` |`)
}
console.log(out.join('\n'))
