// Builds lib/ twice, to ESM (dist/esm) and CommonJS (dist/cjs), from one TypeScript source.
import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
rmSync('dist', { recursive: true, force: true })
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' })
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.cjs.json'], { stdio: 'inherit' })
mkdirSync('dist/cjs', { recursive: true })
writeFileSync('dist/cjs/package.json', '{ "type": "commonjs" }\n')
// Like every Fastify plugin, `require('fastify-oshara-voice')` is the plugin itself, carrying
// `default`, `osharaVoice` and the other named exports as properties.
appendFileSync('dist/cjs/index.js', 'module.exports = Object.assign(exports.osharaVoice, exports);\n')
