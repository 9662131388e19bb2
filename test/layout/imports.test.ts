/**
 * No arrows back up the house: a folder of src/ imports only folders of lower layers. The order is the
 * README's "Layers, lowest first:" line (below its layout table); every import of src/**\/*.ts counts
 * (`import`, `import type`, `export … from`, dynamic `import()`). The exceptions still allowed are listed
 * below with why, and printed on every run; one that no longer occurs fails the test, so the list only shrinks.
 */
import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, posix, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SRC = join(ROOT, 'src')

/** Arrows still allowed, "from -> to" by folder, each with the file that makes it and why. */
const ALLOWED = new Map<string, string>([])

/** The README's layers: folder -> rank (0 = lowest). */
function layers (): Map<string, number> {
  const line = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n').find((l) => l.startsWith('Layers, lowest first:'))
  if (line === undefined) throw new Error('README.md has no "Layers, lowest first:" line')
  const rank = new Map<string, number>()
  line.slice('Layers, lowest first:'.length).split('<').forEach((layer, i) => {
    for (const name of layer.split(',').map((s) => s.trim()).filter((s) => s !== '')) rank.set(name, i)
  })
  return rank
}

function walk (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
}

/** The folder of src/ a file is in; files at the root of src/ (version.ts) are '.'. */
function folderOf (relToSrc: string): string {
  const parts = relToSrc.split('/')
  return parts.length > 1 ? parts[0]! : '.'
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm

interface Arrow { from: string, to: string, file: string, spec: string }

function arrows (): Arrow[] {
  const out: Arrow[] = []
  for (const file of walk(SRC)) {
    const rel = relative(SRC, file).split('\\').join('/')
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(SPECIFIER)) {
      const spec = m[1]!
      if (!spec.startsWith('.')) continue
      const target = posix.normalize(posix.join(posix.dirname(rel), spec))
      if (target.startsWith('..')) throw new Error(`${rel} imports ${spec}, outside src/`)
      const from = folderOf(rel)
      const to = folderOf(target)
      if (from !== to) out.push({ from, to, file: `src/${rel}`, spec })
    }
  }
  return out
}

t.test('the README orders every folder of src/', async (t) => {
  const rank = layers()
  const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)
  t.same(folders.filter((f) => !rank.has(f)), [], 'folders missing from the README\'s layers line')
  t.same([...rank.keys()].filter((f) => !folders.includes(f)), [], 'layers naming no folder')
})

t.test('no folder imports a folder of its own layer or above', async (t) => {
  const rank = layers()
  const level = (f: string): number => (f === '.' ? -1 : rank.get(f) ?? Infinity)
  const found = arrows()
  t.ok(found.length > 100, `the parser sees the imports (${found.length} across folders)`)
  const upward = new Map<string, string[]>()
  for (const a of found) {
    if (level(a.to) < level(a.from)) continue
    const key = `${a.from} -> ${a.to}`
    upward.set(key, [...(upward.get(key) ?? []), `${a.file} imports ${a.spec}`])
  }
  for (const [key, why] of ALLOWED) t.comment(`allowed for now: ${key}: ${why}`)
  const bad = [...upward].filter(([key]) => !ALLOWED.has(key)).map(([key, files]) => `${key} (${files.join('; ')})`)
  t.same(bad, [], 'arrows up the house (or sideways within a layer)')
  t.same([...ALLOWED.keys()].filter((k) => !upward.has(k)), [], 'allowed arrows that no longer occur (remove them from ALLOWED)')
})

t.test('the parser sees every kind of import', async (t) => {
  const sample = `import a from './x.js'\nimport type { B } from '../y/b.js'\nexport { c } from '../z/c.js'\nconst d = await import('../w/d.js')\nimport '../v/side.js'\n`
  t.same([...sample.matchAll(SPECIFIER)].map((m) => m[1]), ['./x.js', '../y/b.js', '../z/c.js', '../w/d.js', '../v/side.js'])
})
