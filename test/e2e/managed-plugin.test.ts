/**
 * ferry as a Docker managed plugin, end to end with the test engine: `npm run package:plugin`
 * builds config.json and the rootfs (scripts/package-plugin.mjs), then `docker plugin create`,
 * `docker plugin set` (settings and mount sources), `docker plugin enable`; a network with
 * `-d ferry:latest --ipam-driver ferry:latest`, a container whose published port answers from
 * another namespace; the host's `ferry` CLI reaches the plugin's agent through the API socket;
 * then everything removed, the plugin disabled and removed: no plugin, no link, no rule of ferry.
 *
 * The Debian base and the production dependencies are built once into /tmp/ferry-plugin-cache
 * (keyed by the package list and package-lock.json; the first build takes ~1.5 min), each run
 * copies them (~15 s). Skipped, with the reason, when debootstrap is not installed.
 * Build first (`npm run build`): the rootfs takes dist/.
 */
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execFile } from '../../src/kernel/exec.js'
import { AGENT_NODE_FLAGS } from '../../src/install/node-flags.js'
import { ipJson, netns, sh } from '../harness/netns.js'
import { startDockerd } from '../harness/dockerd.js'
import { ensureBusyboxImage } from '../harness/image.js'
import { NODE, cleanEnv } from '../harness/agent.js'
import { ferryTraces } from '../harness/firewall.js'
import { UPLINK, dualUplink, url } from '../harness/uplink.js'
import { observe } from '../harness/until.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CACHE = '/tmp/ferry-plugin-cache'

if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) t.fail('dist/ is missing: run `npm run build` first')
const debootstrap = ['/usr/sbin/debootstrap', '/usr/bin/debootstrap'].some((p) => existsSync(p))

await t.test('ferry as a Docker managed plugin', { skip: debootstrap ? false : 'debootstrap is not installed (apt-get install debootstrap): the plugin rootfs cannot be built' }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'ferry-plugin-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const out = join(work, 'plugin')

  await t.test('npm run package:plugin builds config.json and a rootfs with node, the agent and the tools', async (t) => {
    const r = await execFile([...NODE, join(REPO, 'scripts', 'package-plugin.mjs'), '--out', out, '--cache', CACHE],
      { env: cleanEnv(), timeoutMs: 600_000, allowFailure: true })
    t.equal(r.code, 0, r.stderr.slice(-3000))
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as {
      interface: { types: string[], socket: string }, network: { type: string }, entrypoint: string[]
      linux: { capabilities: string[] }, env: Array<{ name: string, settable: string[], value?: string }>, mounts: Array<{ name: string, source: string, settable: string[] }>
    }
    t.same(config.interface, { types: ['docker.networkdriver/1.0', 'docker.ipamdriver/1.0'], socket: 'ferry.sock' })
    t.equal(config.network.type, 'host')
    for (const c of ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_NET_RAW']) t.ok(config.linux.capabilities.includes(c), c)
    t.same(config.env.filter((e) => e.settable.includes('value')).map((e) => e.name).sort(), ['ADVERTISE_ADDR', 'ARGS', 'CLUSTER', 'FERRY_NODE_FLAGS', 'FIREWALL_BACKEND', 'LOG_LEVEL'])
    t.equal(config.env.find((e) => e.name === 'FERRY_NODE_FLAGS')?.value, AGENT_NODE_FLAGS.join(' '), "the agent's node flags by default")
    t.same(config.mounts.map((m) => m.name), ['run', 'lib'])
    const rootfs = join(out, 'rootfs')
    t.ok(existsSync(join(rootfs, config.entrypoint[0]!)), 'the entrypoint is in the rootfs')
    const version = sh(['env', '-u', 'NODE_OPTIONS', 'chroot', rootfs, '/usr/local/bin/node', '/opt/ferry/bin/ferry', '--version']).trim()
    t.equal(version, (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version, 'node runs the agent inside the rootfs')
    for (const tool of [['ip', '-V'], ['nft', '--version'], ['iptables', '--version'], ['conntrack', '--version'], ['wireguard-go', '--version']]) {
      t.match(sh(['chroot', rootfs, ...tool], { allowFailure: true }), /\d+\.\d+/, `${tool[0]} runs inside the rootfs`)
    }
    t.ok(existsSync(join(rootfs, 'opt', 'ferry', 'node_modules', 'netlink', 'prebuilds', 'linux-x64')), "netlink's prebuild is shipped")
    t.notOk(existsSync(join(rootfs, 'opt', 'ferry', 'node_modules', 'tap')), 'no development dependency')
  })
  if (!existsSync(join(out, 'config.json'))) return

  const host = netns(t, 'fymp')
  const outside = netns(t, 'fymo')
  dualUplink(host, outside)
  const d = await startDockerd(t, { ns: host })
  await ensureBusyboxImage(d)
  // The engine's directory holds its socket (docker.sock): it stands for the host's /run.
  const runDir = d.dir
  const libDir = join(work, 'lib')
  sh(['mkdir', '-m', '0700', libDir])
  const apiDir = join(runDir, 'ferry')
  const stateDir = join(libDir, 'ferry')
  const ferry = (args: string[]) => execFile([...NODE, join(REPO, 'bin', 'ferry'), ...args],
    { env: { ...cleanEnv(), FERRY_API_SOCKET: join(apiDir, 'ferry.sock') }, allowFailure: true, timeoutMs: 30_000 })
  const links = () => ipJson<Array<{ ifname: string }>>(host, ['link']).map((l) => l.ifname).filter((n) => /^(fy|ferry)/.test(n))
  t.teardown(async () => {
    // On a failure midway: the engine goes with the test, but ferry's links and rules in `host` go with the namespace.
    if (!t.passing()) t.comment(`dockerd log:\n${d.logs().slice(-4000)}`)
  })

  await t.test('docker plugin create, set, enable', async (t) => {
    t.equal((await d.docker(['plugin', 'create', 'ferry', out], { timeoutMs: 300_000 })).code, 0, 'docker plugin create ferry DIR')
    const set = await d.docker(['plugin', 'set', 'ferry', 'LOG_LEVEL=debug', `run.source=${runDir}`, `lib.source=${libDir}`])
    t.equal(set.code, 0, set.stderr)
    const en = await d.docker(['plugin', 'enable', 'ferry'], { timeoutMs: 120_000 })
    t.equal(en.code, 0, en.stderr)
    const ls = await d.dockerOk(['plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}'])
    t.equal(ls.trim(), 'ferry:latest true')
    // The plugin's agent runs node with the agent's flags (the setting FERRY_NODE_FLAGS, its default from src/install/node-flags.ts).
    const cmdlines = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map((p) => {
      try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0') } catch { return [] }
    })
    const agent = cmdlines.find((c) => c[0] === '/usr/local/bin/node' && c.includes('/opt/ferry/bin/ferry') && c.includes('agent'))
    t.same(agent?.slice(1, 1 + AGENT_NODE_FLAGS.length), AGENT_NODE_FLAGS, "the plugin's agent runs node with the agent's node flags")
  })

  await t.test('a ferry network, a container with a published port reached from outside, the CLI on the host', async (t) => {
    const nc = await d.docker(['network', 'create', '-d', 'ferry:latest', '--ipam-driver', 'ferry:latest', '--subnet', '10.83.0.0/24', 'front'])
    t.equal(nc.code, 0, nc.stderr)
    const run = await d.docker(['run', '-d', '--stop-timeout', '1', '--name', 'web', '--net', 'front', '-p', '8080:80', 'bb', 'sh', '-c',
      'mkdir -p /www && echo managed > /www/index.html && exec httpd -f -p 80 -h /www'])
    t.equal(run.code, 0, run.stderr)
    const got = await observe(
      () => sh(['ip', 'netns', 'exec', outside, 'curl', '-s', '-m', '3', url(UPLINK[4].host, 8080)], { allowFailure: true }).trim(),
      (v) => v !== '', { timeoutMs: 20_000, everyMs: 200 })
    t.equal(got, 'managed', 'the container answers on the host\'s published port from another namespace')
    const eps = await ferry(['endpoint', 'ls', '--json'])
    t.equal(eps.code, 0, eps.stderr)
    t.match(JSON.parse(eps.stdout), [{ container: 'web' }], "the host's ferry CLI reaches the plugin's agent")
    t.ok(existsSync(join(stateDir, 'state.json')), 'the state is in the mounted state directory')
  })

  await t.test('remove everything, disable, remove: nothing left', async (t) => {
    await d.dockerOk(['rm', '-f', 'web'])
    t.equal((await d.docker(['network', 'rm', 'front'])).code, 0)
    const dis = await d.docker(['plugin', 'disable', 'ferry'], { timeoutMs: 60_000 })
    t.equal(dis.code, 0, dis.stderr)
    const rm = await d.docker(['plugin', 'rm', 'ferry'])
    t.equal(rm.code, 0, rm.stderr)
    t.equal((await d.dockerOk(['plugin', 'ls', '-q'])).trim(), '', 'no plugin')
    t.same(links(), [], 'no link of ferry')
    t.equal(ferryTraces(host), '', 'no rule of ferry (iptables, ip6tables, nft)')
    t.same(readdirSync(apiDir), [], 'the API socket is gone')
  })
})
