// The npm package as a user installs it: `npm pack`, then `npm install -g` of the tarball into
// a fresh prefix (dependencies from the npm registry, as on a user's machine), then the two
// commands from that prefix's PATH. The native dependency (netlink) must come from its
// prebuild: nothing of it is compiled (no build/ directory) and the binding opens a socket. ferry's own
// addon (src/dns/native) is compiled by the package's install script where there is a compiler.
import t from 'tap'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFile } from '../../src/kernel/exec.js'
import { cleanEnv } from '../harness/agent.js'

/** The user's environment: without the test runner's loader. */
const env = { ...cleanEnv(), npm_config_update_notifier: 'false' }
/** The runner re-adds its loader to every child's NODE_OPTIONS: `env -u` drops it where a user's shell would not have it. */
const asUser = (argv: string[]): string[] => ['env', '-u', 'NODE_OPTIONS', ...argv]

const root = join(import.meta.dirname, '..', '..')
const dir = mkdtempSync(join(tmpdir(), 'ferry-pack-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const npm = async (args: string[], cwd = root): Promise<string> => {
  const r = await execFile(['npm', '--prefix', cwd, ...args], { timeoutMs: 300_000, env })
  return r.stdout
}

t.test('npm pack ships the build, the commands and the docs, not the sources or tests', async (t) => {
  // `npm test` built dist/ already; prepack would build again.
  const out = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir, root])
  const [info] = JSON.parse(out) as Array<{ filename: string, files: Array<{ path: string }> }>
  t.ok(info, 'npm pack describes the tarball')
  const files = info!.files.map((f) => f.path)
  for (const want of ['bin/ferry', 'bin/ferry-cni', 'dist/cli/main.js', 'dist/cni/main.js', 'package.json', 'README.md']) {
    t.ok(files.includes(want), `the package has ${want}`)
  }
  // The one source shipped: the DNS server's batched UDP addon, which the package's install script compiles on
  // the user's machine (node-gyp; without a compiler DNS serves through node:dgram).
  const addonSources = ['binding.gyp', 'src/dns/native/udp_batch.c']
  for (const want of addonSources) t.ok(files.includes(want), `the package has ${want}`)
  t.same(files.filter((f) => !addonSources.includes(f) && (/^(src|test|bench|tap-snapshots)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'))), [],
    'no other sources, no tests or benchmarks')
  t.ok(existsSync(join(dir, info!.filename)), 'the tarball is written')
})

t.test('npm install -g puts ferry and ferry-cni on the PATH and the native binding loads without a compiler', async (t) => {
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))
  t.ok(tarball, 'a tarball from the previous test')
  const prefix = join(dir, 'prefix')
  await execFile(['npm', 'install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(dir, tarball!)],
    { timeoutMs: 300_000, env })
  const bin = join(prefix, 'bin')
  const version = await execFile(asUser([join(bin, 'ferry'), '--version']), { env })
  t.match(version.stdout.trim(), /^\d+\.\d+\.\d+/, 'ferry --version answers from the installed package')
  const cni = await execFile(asUser([join(bin, 'ferry-cni')]), { input: '{"cniVersion":"1.0.0"}', env: { ...env, CNI_COMMAND: 'VERSION' } })
  t.match(JSON.parse(cni.stdout), { supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] }, 'ferry-cni VERSION answers')
  const netlink = join(prefix, 'lib', 'node_modules', 'ferry', 'node_modules', 'netlink')
  t.notOk(existsSync(join(netlink, 'build')), 'netlink was not compiled (its prebuild is used)')
  const probe = [
    `const nl = await import(${JSON.stringify(join(netlink, 'dist', 'index.js'))})`,
    'const s = nl.createRtNetlink()',
    'const links = await s.getLinks()',
    's.socket.close()',
    'console.log(links.some((l) => l.attrs.ifname === "lo"))',
  ].join('\n')
  const loaded = await execFile(asUser([process.execPath, '--input-type=module', '-e', probe]), { env })
  t.equal(loaded.stdout.trim(), 'true', 'the installed netlink binding lists this namespace\'s links (read-only)')
  const addon = join(prefix, 'lib', 'node_modules', 'ferry', 'build', 'Release', 'ferry_udp_batch.node')
  t.ok(existsSync(addon), 'the install script built the DNS server\'s batched UDP addon (this machine has a compiler)')
})
