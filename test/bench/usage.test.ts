import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { usageOf, wantsHelp } from '../../bench/usage.js'

t.test('the first doc comment, without its markers', async (t) => {
  t.equal(usageOf('/**\n * Bench, not a test:\n *\n *   npm run bench:x [-- --n 3]\n */\nconst a = 1\n/** later */'), 'Bench, not a test:\n\n  npm run bench:x [-- --n 3]')
  t.equal(usageOf('#!/usr/bin/env node\n/** one line */'), 'one line')
  t.equal(usageOf('const a = 1\n/** not first */'), undefined)
  t.equal(usageOf(''), undefined)
})

t.test('--help or -h after the script, nothing else', async (t) => {
  t.equal(wantsHelp(['node', 'bench/x.ts', '--help']), true)
  t.equal(wantsHelp(['node', 'bench/x.ts', '--sizes', '10', '-h']), true)
  t.equal(wantsHelp(['node', 'bench/x.ts', '--sizes', '10']), false)
  t.equal(wantsHelp(['--help', 'bench/x.ts']), false, 'a node option is not the benchmark\'s')
})

t.test('every benchmark run by an npm script answers --help from its own header', async (t) => {
  const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts
  const entries = new Set(Object.entries(scripts).filter(([k]) => k.startsWith('bench:') || k === 'soak')
    .map(([, v]) => /bench\/([a-z-]+)\.ts/.exec(v)?.[1]).filter((f): f is string => f !== undefined))
  t.ok(entries.size >= 8, `found the benchmarks (${[...entries].join(', ')})`)
  for (const f of entries) {
    const src = readFileSync(`bench/${f}.ts`, 'utf8')
    t.ok(usageOf(src) !== undefined, `${f}.ts has a header`)
    t.match(src, /\nhelpAndExit\(import\.meta\.url\)\n/, `${f}.ts calls helpAndExit before it starts`)
  }
  t.ok(readdirSync('bench').includes('usage.ts'))
})
