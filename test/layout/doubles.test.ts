/**
 * Test doubles stay out of the build: nothing under src/ imports from test/
 * or bench/, and no in-memory stand-in (fake*, memory*, mock*, stub*) lives
 * in src/. The doubles live in test/harness/ (kernel-fake.ts, cluster-memory.ts).
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const src = join(root, 'src')

function sources (dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...sources(p))
    else if (/\.[cm]?[jt]s$/.test(e.name)) out.push(p)
  }
  return out
}

/** Every module specifier of a file: static imports and re-exports, side-effect imports, import() and require(). */
function specifiers (text: string): string[] {
  const found: string[] = []
  const patterns = [
    /\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g
  ]
  for (const re of patterns) for (const m of text.matchAll(re)) if (m[1] !== undefined) found.push(m[1])
  return found
}

const files = sources(src)

t.test('finds the sources and their imports', async (t) => {
  t.ok(files.length > 20, `${files.length} source files`)
  t.same(specifiers("import a from './a.js'\nexport { b } from '../b.js'\nimport './c.js'\nawait import('../../test/d.js')"),
    ['./a.js', '../b.js', './c.js', '../../test/d.js'])
})

t.test('nothing under src/ imports from outside src/ by a relative path', async (t) => {
  const outside: string[] = []
  for (const f of files) {
    for (const s of specifiers(readFileSync(f, 'utf8'))) {
      if (!s.startsWith('.')) continue
      const target = relative(src, resolve(dirname(f), s))
      if (target === '..' || target.startsWith('..' + sep)) outside.push(`${relative(root, f)} imports ${s}`)
    }
  }
  t.same(outside, [], 'src/ must not import test/, bench/ or other files outside src/')
})

t.test('no test doubles live in src/', async (t) => {
  const doubles = files.map((f) => relative(root, f)).filter((f) => /^(fake|memory|mock|stub)/i.test(basename(f)))
  t.same(doubles, [], 'test doubles belong in test/harness/')
})
