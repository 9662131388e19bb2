#!/usr/bin/env node
// Builds ferry as a Docker managed plugin: <out>/config.json and <out>/rootfs/, which
// `docker plugin create ferry <out>` accepts. See docs/plugin.md.
//
//   node scripts/package-plugin.mjs [--out build/plugin] [--cache DIR] [--node PATH] [--mirror URL]
//
// rootfs: Debian 12 (debootstrap --variant=minbase) with ip, nft, iptables, conntrack and
// wireguard-go from Debian's packages; the node binary given by --node (default: the one running
// this script, which must be ≥ 20); /opt/ferry holds bin/, dist/ and the production dependencies
// (`npm ci --omit=dev --ignore-scripts` from package-lock.json: netlink's shipped prebuild, nothing compiled) and
// the DNS addon this checkout's `npm ci` built (build/Release/ferry_udp_batch.node), when there is one.
// The Debian base and the dependencies are cached under --cache, keyed by what they are made
// from, so a second run only copies.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SUITE = 'bookworm'
export const DEBIAN_PACKAGES = ['iproute2', 'iptables', 'nftables', 'conntrack', 'wireguard-go', 'ca-certificates']

const { values: o } = parseArgs({
  options: {
    out: { type: 'string', default: join(REPO, 'build', 'plugin') },
    cache: { type: 'string', default: join(REPO, 'build', 'plugin-cache') },
    node: { type: 'string', default: process.execPath },
    mirror: { type: 'string', default: 'http://deb.debian.org/debian' },
  },
})
const out = resolve(o.out)
const cache = resolve(o.cache)

const run = (argv, opts = {}) => {
  try {
    execFileSync(argv[0], argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], ...opts })
  } catch (e) {
    throw new Error(`${argv[0]} failed (${e.status ?? e.code ?? e.signal}): ${argv.join(' ')}`)
  }
}
const hash = (...parts) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16)
const say = (s) => process.stderr.write(`package-plugin: ${s}\n`)
process.on('uncaughtException', (e) => { say(e instanceof Error ? e.message : String(e)); process.exit(1) })

if (process.getuid?.() !== 0) throw new Error('package-plugin must run as root (debootstrap, and the rootfs keeps root ownership)')
const nodeVersion = execFileSync(o.node, ['--version'], { encoding: 'utf8' }).trim()
if (Number(/^v(\d+)/.exec(nodeVersion)?.[1] ?? 0) < 20) throw new Error(`${o.node} is Node.js ${nodeVersion}; ferry needs 20 or later`)
if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first')
/** The agent's node flags, the plugin setting FERRY_NODE_FLAGS's default (one list: src/install/node-flags.ts). */
const { AGENT_NODE_FLAGS } = await import(new URL('../dist/install/node-flags.js', import.meta.url).href)

/** Makes `dir` with `make(tmp)` once: built beside it, then renamed, so a killed run leaves no half. */
function cached (dir, what, make) {
  if (existsSync(dir)) { say(`${what}: cached ${dir}`); return dir }
  const tmp = `${dir}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp, { recursive: true })
  say(`${what}: building ${dir}`)
  make(tmp)
  try {
    renameSync(tmp, dir)
  } catch (e) {
    // Another run made the same entry meanwhile: it is as good as ours.
    if (!existsSync(dir)) throw e
    rmSync(tmp, { recursive: true, force: true })
  }
  return dir
}

mkdirSync(join(cache, 'debs'), { recursive: true })
const base = cached(join(cache, `debian-${SUITE}-${hash(SUITE, DEBIAN_PACKAGES.join(','))}`), 'Debian base', (tmp) => {
  run(['debootstrap', '--variant=minbase', `--include=${DEBIAN_PACKAGES.join(',')}`,
    `--cache-dir=${join(cache, 'debs')}`, SUITE, tmp, o.mirror])
  // What a plugin never uses: docs, manuals, locales, apt's lists and archives.
  for (const d of ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'var/lib/apt/lists', 'var/cache/apt', 'var/cache/debconf'])
    rmSync(join(tmp, d), { recursive: true, force: true })
})
const lock = readFileSync(join(REPO, 'package-lock.json'))
const deps = cached(join(cache, `deps-${hash(lock, nodeVersion.split('.')[0])}`), 'production dependencies', (tmp) => {
  copyFileSync(join(REPO, 'package.json'), join(tmp, 'package.json'))
  copyFileSync(join(REPO, 'package-lock.json'), join(tmp, 'package-lock.json'))
  run(['npm', 'ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', tmp],
    { env: { ...process.env, npm_config_update_notifier: 'false' } })
})

rmSync(out, { recursive: true, force: true })
const rootfs = join(out, 'rootfs')
mkdirSync(out, { recursive: true })
say(`rootfs: ${rootfs}`)
run(['cp', '-a', '--reflink=auto', base, rootfs])
copyFileSync(o.node, join(rootfs, 'usr', 'local', 'bin', 'node'))
chmodSync(join(rootfs, 'usr', 'local', 'bin', 'node'), 0o755)
const app = join(rootfs, 'opt', 'ferry')
mkdirSync(app, { recursive: true })
for (const d of ['bin', 'dist']) cpSync(join(REPO, d), join(app, d), { recursive: true })
// The DNS server's batched UDP addon, built by `npm ci` in this checkout for the same node binary (--node must be
// that Node.js's ABI): without it the plugin's DNS serves UDP through node:dgram and says so in its log.
const addon = join(REPO, 'build', 'Release', 'ferry_udp_batch.node')
if (existsSync(addon)) {
  mkdirSync(join(app, 'build', 'Release'), { recursive: true })
  copyFileSync(addon, join(app, 'build', 'Release', 'ferry_udp_batch.node'))
} else say('the batched UDP addon is not built (build/Release/ferry_udp_batch.node): the plugin\'s DNS will use node:dgram')
copyFileSync(join(REPO, 'package.json'), join(app, 'package.json'))
cpSync(join(deps, 'node_modules'), join(app, 'node_modules'), { recursive: true })
for (const d of ['run/docker/plugins', 'host/run', 'host/var/lib']) mkdirSync(join(rootfs, d), { recursive: true })
writeFileSync(join(rootfs, 'usr', 'local', 'bin', 'ferry-plugin'), readFileSync(join(REPO, 'scripts', 'plugin-entrypoint.sh')), { mode: 0o755 })
writeFileSync(join(out, 'config.json'), `${JSON.stringify(pluginConfig(), null, 2)}\n`)
say(`done: docker plugin create ferry ${out}`)

/** Docker's plugin config v1 (docs.docker.com/engine/extend/config/). */
function pluginConfig () {
  const env = (name, value, description) => ({ name, description, settable: ['value'], value })
  const bind = (name, source, destination, description) => ({ name, description, source, destination, type: 'bind', options: ['rbind'], settable: ['source'] })
  return {
    description: 'ferry: container networking agent (network and IPAM driver, bridge, NAT, VXLAN overlay, DNS)',
    documentation: 'https://github.com/ferry/ferry/blob/main/docs/plugin.md',
    entrypoint: ['/usr/local/bin/ferry-plugin'],
    workdir: '/opt/ferry',
    interface: { types: ['docker.networkdriver/1.0', 'docker.ipamdriver/1.0'], socket: 'ferry.sock' },
    network: { type: 'host' },
    linux: {
      capabilities: ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_NET_RAW', 'CAP_NET_BIND_SERVICE',
        'CAP_DAC_OVERRIDE', 'CAP_CHOWN', 'CAP_FOWNER', 'CAP_KILL', 'CAP_SETUID', 'CAP_SETGID'],
      devices: [{ path: '/dev/net/tun' }],
    },
    // Whole directories that always exist on the host (a bind source must exist, and /run is empty
    // after a boot, when the engine starts the plugin); the entrypoint makes ferry's own in them.
    mounts: [
      bind('run', '/run', '/host/run', "the host's /run: the agent's API socket (/run/ferry/ferry.sock, where `ferry` finds it), the engine's socket, the xtables lock"),
      bind('lib', '/var/lib', '/host/var/lib', "the host's /var/lib: the agent's state in /var/lib/ferry, kept across disable, enable and upgrade"),
    ],
    env: [
      env('CLUSTER', '', 'Redis URL of the cluster (--cluster); empty: a single host'),
      env('ADVERTISE_ADDR', '', "this host's address for the overlay (--advertise-addr)"),
      env('LOG_LEVEL', 'info', '--log-level'),
      env('FIREWALL_BACKEND', '', '--firewall-backend nftables|iptables; empty: ferry picks'),
      env('ARGS', '', 'more `ferry agent` flags, split on spaces'),
      env('FERRY_NODE_FLAGS', AGENT_NODE_FLAGS.join(' '), "node's flags for the agent, split on spaces (empty: V8's defaults; docs/cluster.md)"),
    ],
  }
}
