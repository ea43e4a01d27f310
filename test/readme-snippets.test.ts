import t from 'tap'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

// Docs that compile: every ```ts block of README.md is typechecked as a user would paste it.
//
// How the blocks compose: each block is its own module (one file, as in a user's project), and
// all blocks are compiled together as one program. So the README's `declare module 'fastify'`
// block (`request.user`, `app.authenticate`) applies to every block, as a user's own
// declaration file would; anything else a block uses, it imports or declares itself.
//
// The modules are written to a temporary folder inside the repository (`.readme-snippets-*`,
// git-ignored, ignored by eslint, never matched by tap, removed afterwards) with a strict
// tsconfig (module and moduleResolution `nodenext`), so `import ... from 'fastify-oshara-voice'`
// resolves through the package's self-reference (package.json `exports`) to the built dist/
// types, exactly as in a project that installed the package. `npm test` builds dist/ first.
// (Not measured for coverage: it loads nothing from lib/, see coverage-map.mjs.)

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const README = join(ROOT, 'README.md')
const BUILT_TYPES = join(ROOT, 'dist', 'esm', 'index.d.ts')

const TSCONFIG = {
  compilerOptions: {
    strict: true,
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    lib: ['es2023'],
    types: ['node'],
    skipLibCheck: true,
    noEmit: true
  }
}

interface Snippet {
  /** README line of the opening ```ts fence; the code starts on the next line. */
  fenceLine: number
  code: string
}

interface Problem {
  /** README line the diagnostic points at (the fence line for a diagnostic without a position). */
  line: number
  text: string
}

/** Every ```ts block of `markdown`, with the line of its opening fence (1-based). */
function extractTsBlocks (markdown: string): Snippet[] {
  const lines = markdown.split(/\r?\n/)
  const blocks: Snippet[] = []
  let open: { fenceLine: number, body: string[] } | undefined
  lines.forEach((line, index) => {
    if (open === undefined) {
      if (/^```(ts|typescript)\s*$/.test(line)) open = { fenceLine: index + 1, body: [] }
    } else if (/^```\s*$/.test(line)) {
      blocks.push({ fenceLine: open.fenceLine, code: open.body.join('\n') + '\n' })
      open = undefined
    } else {
      open.body.push(line)
    }
  })
  if (open !== undefined) throw new Error(`README.md:${open.fenceLine}: a \`\`\`ts block is never closed`)
  return blocks
}

let scratch: string | undefined

/** A fresh folder under the repository's temporary `.readme-snippets-*` folder. */
async function folder (name: string): Promise<string> {
  scratch ??= await mkdtemp(join(ROOT, '.readme-snippets-'))
  const dir = join(scratch, name)
  await mkdir(dir, { recursive: true })
  return dir
}

t.teardown(async () => {
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
})

/**
 * Writes each snippet as its own module into `dir` with the strict nodenext tsconfig, compiles them
 * all as one program and returns every diagnostic, located by README line.
 */
async function typecheck (snippets: Snippet[], dir: string): Promise<Problem[]> {
  const files = new Map<string, Snippet>()
  for (const snippet of snippets) {
    const file = join(dir, `readme-line-${snippet.fenceLine}.ts`)
    files.set(file, snippet)
    await writeFile(file, snippet.code)
  }
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ ...TSCONFIG, files: [...files.keys()].map((file) => relative(dir, file)) }, null, 2))

  const configPath = join(dir, 'tsconfig.json')
  const { config, error } = ts.readConfigFile(configPath, ts.sys.readFile)
  if (error !== undefined) return [{ line: 0, text: ts.flattenDiagnosticMessageText(error.messageText, '\n') }]
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, dir, undefined, configPath)
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options })
  const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program)]

  const problems = diagnostics.map((diagnostic): Problem => {
    const message = `TS${diagnostic.code}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`
    const snippet = diagnostic.file === undefined ? undefined : files.get(diagnostic.file.fileName)
    if (diagnostic.file === undefined || diagnostic.start === undefined || snippet === undefined) {
      const where = diagnostic.file === undefined ? '' : `${relative(ROOT, diagnostic.file.fileName)}: `
      return { line: snippet?.fenceLine ?? 0, text: `${where}${message}` }
    }
    const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
    const readmeLine = snippet.fenceLine + 1 + line
    return { line: readmeLine, text: `README.md:${readmeLine}:${character + 1} ${message}` }
  })
  return problems.sort((a, b) => a.line - b.line)
}

t.test('every ```ts block of README.md typechecks (strict, nodenext, against dist/)', { timeout: 120_000 }, async (t) => {
  t.ok(existsSync(BUILT_TYPES), 'dist/ is built (npm run build; npm test builds first)')
  if (!existsSync(BUILT_TYPES)) return

  const snippets = extractTsBlocks(await readFile(README, 'utf8'))
  t.ok(snippets.length >= 6, `README.md has its ts blocks (found ${snippets.length})`)
  t.ok(snippets.some((snippet) => /declare module 'fastify'/.test(snippet.code)), 'including the declare module \'fastify\' block')
  t.ok(snippets.some((snippet) => /from 'fastify-oshara-voice'/.test(snippet.code)), 'importing the package by its name')

  const problems = await typecheck(snippets, await folder('readme'))
  for (const problem of problems) t.fail(problem.text)
  t.same(problems.map((problem) => problem.text), [], 'no diagnostics')
})

t.test('the checker reports a broken snippet, at its README line', { timeout: 120_000 }, async (t) => {
  t.ok(existsSync(BUILT_TYPES), 'dist/ is built (npm run build; npm test builds first)')
  if (!existsSync(BUILT_TYPES)) return

  const markdown = [
    '# A page', // 1
    '', // 2
    '```ts', // 3
    "import osharaVoice from 'fastify-oshara-voice'", // 4
    "import Fastify from 'fastify'", // 5
    '', // 6
    'const app = Fastify()', // 7
    "await app.register(osharaVoice, { origin: 42, agent: 'support-bot' })", // 8: origin is a string
    '```', // 9
    '', // 10
    '```ts', // 11
    'const count: number = \'three\'', // 12
    '```', // 13
    '',
    '```js',
    'const notChecked = ',
    '```'
  ].join('\n')
  const snippets = extractTsBlocks(markdown)
  t.same(snippets.map((snippet) => snippet.fenceLine), [3, 11], 'only the ts blocks')

  const dir = await folder('broken')
  const problems = await typecheck(snippets, dir)
  t.same(problems.map((problem) => problem.line), [8, 12], 'one diagnostic per broken line, at its README line')
  t.match(problems[0]?.text, /^README\.md:8:\d+ TS2769: .*OsharaVoiceOptions.*Type 'number' is not assignable to type 'string'/s,
    'the plugin options are typed from dist/ (a number is no origin)')
  t.match(problems[1]?.text, /^README\.md:12:7 TS2322: Type 'string' is not assignable to type 'number'/)

  const options = ts.parseJsonConfigFileContent(TSCONFIG, ts.sys, dir).options
  const resolved = ts.resolveModuleName('fastify-oshara-voice', join(dir, 'readme-line-3.ts'), options, ts.sys, undefined, undefined, ts.ModuleKind.ESNext)
  t.equal(resolved.resolvedModule?.resolvedFileName, BUILT_TYPES, 'the package name resolves to the built types')
})

t.test('an unclosed ```ts block is an error, not a skipped one', async (t) => {
  t.throws(() => extractTsBlocks('text\n```ts\nconst a = 1\n'), /README\.md:2: a ```ts block is never closed/)
})

/** README.md without its fenced blocks and inline code, where `](...)` is no link. */
function proseOf (markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```[ \t]*$/gm, '').replace(/`[^`\n]*`/g, '')
}

/** GitHub's (and npm's) anchor for a heading. */
function slugOf (heading: string): string {
  return heading.trim().toLowerCase().replace(/`/g, '').replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}

/** Link and image targets of the prose of `markdown`: inline, reference definitions, HTML. */
function linkTargets (prose: string): string[] {
  return [
    ...[...prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)/g)].map((match) => match[1] ?? ''),
    ...[...prose.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(\s|$)/gm)].map((match) => match[1] ?? ''),
    ...[...prose.matchAll(/<(?:img|a)\s[^>]*(?:src|href)\s*=\s*["']([^"']+)["']/gi)].map((match) => match[1] ?? '')
  ]
}

t.test('README links and images: absolute URLs or anchors of its own headings, never a repository file', async (t) => {
  // npm shows the README without a repository to resolve relative paths against (package.json has
  // none) and ships only `files`: a relative link or image there is broken.
  const prose = proseOf(await readFile(README, 'utf8'))
  const anchors = new Set([...prose.matchAll(/^#{1,6}\s+(.+)$/gm)].map((match) => slugOf(match[1] ?? '')))
  const targets = linkTargets(prose)
  t.ok(targets.length > 0, `README.md has links (found ${targets.length})`)
  for (const target of targets) {
    if (target.startsWith('#')) t.ok(anchors.has(target.slice(1)), `${target} is a heading of README.md`)
    else t.match(target, /^(https?:|mailto:)/, `${target} is an absolute URL`)
  }

  // The helpers themselves, so that the checks above cannot pass by finding nothing.
  t.same(linkTargets('![The demo page](docs/demo.png) and [an example](examples/basic.ts "basic")\n[ref]: bench/RESULTS.md\n<img src="docs/x.png">'),
    ['docs/demo.png', 'examples/basic.ts', 'bench/RESULTS.md', 'docs/x.png'])
  t.same(proseOf('a `[x](y)` b\n```md\n![i](docs/i.png)\n```\n'), 'a  b\n\n')
  t.equal(slugOf("With LiveKit's `TokenSource.endpoint()`"), 'with-livekits-tokensourceendpoint')
})
