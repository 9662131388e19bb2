/**
 * Every process ferry starts goes through src/kernel (exec.ts: a program run to its
 * end; process.ts: processes followed, Node helpers; programs fed line by line), and
 * so does every read of the kernel's socket tables (sockets.ts): no file of src/
 * outside src/kernel imports node:child_process or names /proc/net.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SRC = join(ROOT, 'src')

function walk (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []))
}

const files = walk(SRC).map((f) => ({ rel: relative(ROOT, f), text: readFileSync(f, 'utf8') }))
const outside = files.filter((f) => !f.rel.startsWith('src/kernel/'))

t.test('finds the sources, and the kernel adapters do what the others may not', async (t) => {
  t.ok(outside.length > 50, `${outside.length} files outside src/kernel`)
  t.ok(files.some((f) => f.rel.startsWith('src/kernel/') && /['"](node:)?child_process['"]/.test(f.text)), 'src/kernel imports child_process (the rule has something to find)')
  t.ok(files.some((f) => f.rel.startsWith('src/kernel/') && f.text.includes('/proc/net/')), 'src/kernel reads /proc/net')
})

t.test('no process is started outside src/kernel', async (t) => {
  const found = outside.filter((f) => /['"](node:)?child_process['"]/.test(f.text)).map((f) => f.rel)
  t.same(found, [], 'files outside src/kernel that import child_process (use src/kernel/exec.ts or process.ts)')
})

t.test('no socket table is read outside src/kernel', async (t) => {
  // Comments may name the tables; code may not read them.
  const code = (text: string): string => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
  const found = outside.filter((f) => code(f.text).includes('/proc/net')).map((f) => f.rel)
  t.same(found, [], 'files outside src/kernel that read /proc/net (use src/kernel/sockets.ts)')
})
