/**
 * Test files mirror the source files they test: test/<folder>/<module>.test.ts tests src/<folder>/<module>.ts,
 * and a test of one aspect of it is test/<folder>/<module>.<aspect>.test.ts. The tier folders test/kernel
 * (against a real kernel), test/e2e (the real engine), test/layout (the tree itself) are exempt, and the
 * harness's own tests, and those of the benchmarks' pure helpers (test/bench), mirror the file they test.
 */
import t from 'tap'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const TIERS = new Set(['kernel', 'e2e', 'layout'])

// Test files that still mirror no source file, each with why; remove a line when its file is renamed or split.
const NOT_YET = new Set([
  'test/cni/api.test.ts', // the CNI plugin's use of the admin API (src/cni is being changed: rename with it)
  'test/nat/isolation.test.ts', // plan.isolation.test.ts (src/nat is being changed)
  'test/nat/links.test.ts', // plan.links.test.ts (src/nat is being changed)
  'test/metrics/dashboard.test.ts', // docs/grafana-dashboard.json against the registry's metric names
  'test/runtime/pure.test.ts', // flags, netns and run at once: to split
])

function walk (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]))
}

t.test('every test file mirrors a source file (or is an aspect of one)', async (t) => {
  const stray: string[] = []
  for (const file of walk(join(ROOT, 'test')).filter((f) => f.endsWith('.test.ts'))) {
    const rel = relative(ROOT, file)
    const [, folder] = rel.split('/')
    if (folder === undefined || TIERS.has(folder) || NOT_YET.has(rel)) continue
    const base = rel.slice(0, -'.test.ts'.length).split('.')[0]!
    const source = folder === 'harness' || folder === 'bench' ? `${base.replace(/^test\/bench\//, 'bench/')}.ts` : `${base.replace(/^test\//, 'src/')}.ts`
    if (!existsSync(join(ROOT, source))) stray.push(`${rel} (no ${source})`)
  }
  t.same(stray, [], 'test files whose source file does not exist')
  const gone = [...NOT_YET].filter((f) => !existsSync(join(ROOT, f)))
  t.same(gone, [], 'allow-list entries whose file is gone (remove them)')
})
