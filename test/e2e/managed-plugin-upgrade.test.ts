/**
 * ferry's managed plugin through a registry, with the test engine: `docker plugin upgrade` of a
 * plugin that serves a network with a running container, the plugin installed under a name that is
 * not `ferry` (REG/ferry:1), and the engine's boot order.
 *
 * A registry (Debian's docker-registry, distribution 2.8) runs on 127.0.0.1 inside the test's own
 * network namespace, where the test engine runs too (the engine treats 127.0.0.0/8 as an insecure
 * registry by default): nothing listens on the machine's own ports, and a registry a user runs on
 * 5000 is another namespace's. Its config and storage are in a temporary directory; it is killed and
 * the directory removed at the end, even on failure.
 *
 * Two versions of the package are pushed (REG/ferry:1 and REG/ferry:2: same rootfs but a marker file,
 * another description); :1 is installed from the registry (no alias), a network made with
 * `-d REG/ferry:1`, a `--restart always` container publishes a port; `disable -f`, `upgrade` to :2,
 * `enable`, with the container's address and published port checked at each step; then the engine is
 * stopped (SIGTERM) and started again on the same data-root; then everything removed: nothing left.
 * Skipped, with the reason, when debootstrap or docker-registry is not installed.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execFile } from '../../src/kernel/exec.js'
import { ipJson, netns, sh } from '../harness/netns.js'
import { isAlive, startDockerd } from '../harness/dockerd.js'
import { ensureBusyboxImage } from '../harness/image.js'
import { NODE, cleanEnv } from '../harness/agent.js'
import { ferryTraces } from '../harness/firewall.js'
import { UPLINK, dualUplink, url } from '../harness/uplink.js'
import { observe, until } from '../harness/until.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CACHE = '/tmp/ferry-plugin-cache'
/** The registry's port, on 127.0.0.1 of the test's namespace (nothing else listens there). */
const REGISTRY_PORT = 5001
const REG = `127.0.0.1:${REGISTRY_PORT}`
const V1 = `${REG}/ferry:1`
const V2 = `${REG}/ferry:2`

if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) t.fail('dist/ is missing: run `npm run build` first')
const has = (paths: string[]): boolean => paths.some((p) => existsSync(p))
const skip = !has(['/usr/sbin/debootstrap', '/usr/bin/debootstrap'])
  ? 'debootstrap is not installed (apt-get install debootstrap): the plugin rootfs cannot be built'
  : !has(['/usr/bin/docker-registry'])
      ? 'docker-registry is not installed (apt-get install docker-registry): no registry to push to'
      : false

await t.test('docker plugin upgrade through a registry, a plugin named REG/ferry:1, the boot order', { skip }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'ferry-plugup-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const out = join(work, 'plugin')
  const pkg = await execFile([...NODE, join(REPO, 'scripts', 'package-plugin.mjs'), '--out', out, '--cache', CACHE],
    { env: cleanEnv(), timeoutMs: 600_000, allowFailure: true })
  t.equal(pkg.code, 0, `npm run package:plugin: ${pkg.stderr.slice(-2000)}`)
  if (pkg.code !== 0) return

  const host = netns(t, 'fypu')
  const outside = netns(t, 'fypo')
  dualUplink(host, outside)

  // The registry: config and storage in `work`, on 127.0.0.1 of `host`; killed in teardown, even on failure.
  const regDir = join(work, 'registry')
  mkdirSync(join(regDir, 'storage'), { recursive: true })
  writeFileSync(join(regDir, 'config.yml'), [
    'version: 0.1',
    'log: { level: warn }',
    `storage: { filesystem: { rootdirectory: ${join(regDir, 'storage')} }, delete: { enabled: true } }`,
    `http: { addr: "${REG}" }`,
    '',
  ].join('\n'))
  const registry = spawn('ip', ['netns', 'exec', host, 'docker-registry', 'serve', join(regDir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let regLog = ''
  registry.stderr.on('data', (b: Buffer) => { regLog += b.toString() })
  const regExited = new Promise<void>((resolve) => registry.once('exit', () => resolve()))
  const regPid = registry.pid!
  t.teardown(async () => {
    registry.kill('SIGKILL')
    await regExited
  })
  await until('the registry to answer /v2/', () =>
    sh(['ip', 'netns', 'exec', host, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '2', `http://${REG}/v2/`], { allowFailure: true }) === '200',
  { timeoutMs: 20_000, everyMs: 100 })

  const d = await startDockerd(t, { ns: host })
  t.teardown(() => { if (!t.passing()) t.comment(`dockerd log:\n${d.logs().slice(-6000)}\nregistry log:\n${regLog.slice(-2000)}`) })
  await ensureBusyboxImage(d)
  // The engine's directory (with its docker.sock) and one of the test's stand for the host's /run and /var/lib.
  const [runDir, libDir, defaultRun, defaultLib] = [d.dir, join(work, 'lib'), join(work, 'default-run'), join(work, 'default-lib')]
  for (const dir of [libDir, defaultRun, defaultLib]) mkdirSync(dir, { mode: 0o700 })
  const apiSocket = join(runDir, 'ferry', 'ferry.sock')
  const ferry = (args: string[]) => execFile([...NODE, join(REPO, 'bin', 'ferry'), ...args],
    { env: { ...cleanEnv(), FERRY_API_SOCKET: apiSocket }, allowFailure: true, timeoutMs: 30_000 })
  const links = () => ipJson<Array<{ ifname: string }>>(host, ['link']).map((l) => l.ifname).filter((n) => /^(fy|ferry)/.test(n))
  const fetchPort = () => sh(['ip', 'netns', 'exec', outside, 'curl', '-s', '-m', '3', url(UPLINK[4].host, 8080)], { allowFailure: true }).trim()
  const inspect = async (format: string, what: string) => (await d.dockerOk(['inspect', '-f', format, what])).trim()
  const address = () => inspect('{{.NetworkSettings.Networks.front.IPAddress}}', 'web')
  /** The endpoints the host's CLI lists through the plugin's API socket. */
  const endpoints = async () => {
    const r = await ferry(['endpoint', 'ls', '--json'])
    return r.code === 0 ? JSON.parse(r.stdout) as Array<{ container?: string, address?: string }> : r.stderr
  }

  await t.test('two versions pushed to the registry, :1 installed from it under its own name', async (t) => {
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { description: string, mounts: Array<{ name: string, source: string }> }
    // The mounts' default sources are the host's /run and /var/lib: here, directories of the test, so that
    // a mount source the engine does not keep (see the upgrade) never puts the agent in the machine's own.
    const mounts = config.mounts.map((m) => ({ ...m, source: m.name === 'run' ? defaultRun : defaultLib }))
    for (const [ref, n] of [[V1, '1'], [V2, '2']] as const) {
      writeFileSync(join(out, 'rootfs', 'opt', 'ferry', 'PLUGIN_BUILD'), `${n}\n`)
      writeFileSync(join(out, 'config.json'), JSON.stringify({ ...config, mounts, description: `${config.description} (build ${n})` }, null, 2))
      t.equal((await d.docker(['plugin', 'create', ref, out], { timeoutMs: 300_000 })).code, 0, `docker plugin create ${ref}`)
      const push = await d.docker(['plugin', 'push', ref], { timeoutMs: 300_000 })
      t.equal(push.code, 0, `docker plugin push ${ref}: ${push.stderr}`)
      await d.dockerOk(['plugin', 'rm', ref])
    }
    const install = await d.docker(['plugin', 'install', '--grant-all-permissions', '--disable', V1], { timeoutMs: 300_000 })
    t.equal(install.code, 0, install.stderr)
    const set = await d.docker(['plugin', 'set', V1, 'LOG_LEVEL=debug', `run.source=${runDir}`, `lib.source=${libDir}`,
      // Collect orphans every second after 1 s: with the plugin's name unknown to the agent, every endpoint would be one.
      'ARGS=--reconcile-interval 1 --orphan-grace 1'])
    t.equal(set.code, 0, set.stderr)
    const en = await d.docker(['plugin', 'enable', V1], { timeoutMs: 120_000 })
    t.equal(en.code, 0, en.stderr)
    t.equal((await d.dockerOk(['plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}'])).trim(), `${V1} true`)
  })

  await t.test('a network of driver REG/ferry:1, a --restart always container publishing a port', async (t) => {
    const nc = await d.docker(['network', 'create', '-d', V1, '--ipam-driver', V1, '--subnet', '10.84.0.0/24', 'front'])
    t.equal(nc.code, 0, nc.stderr)
    const run = await d.docker(['run', '-d', '--restart', 'always', '--stop-timeout', '1', '--name', 'web', '--net', 'front', '-p', '8080:80', 'bb', 'sh', '-c',
      'mkdir -p /www && echo upgraded > /www/index.html && exec httpd -f -p 80 -h /www'])
    t.equal(run.code, 0, run.stderr)
    t.equal(await observe(fetchPort, (v) => v !== '', { timeoutMs: 20_000, everyMs: 200 }), 'upgraded', 'the published port answers from outside')
    t.equal(await address(), '10.84.0.2')
    // The orphan collector runs every second with a 1 s grace: it must see the engine's endpoint as the container's.
    const status = async () => {
      const r = await ferry(['status', '--json'])
      return r.code === 0 ? (JSON.parse(r.stdout) as { reconcile?: { runs?: number } }).reconcile?.runs ?? 0 : 0
    }
    t.ok(await observe(status, (runs) => runs >= 5, { timeoutMs: 30_000, everyMs: 500 }) >= 5, 'five periodic runs (reconcile and collection) since the start')
    t.match(await endpoints(), [{ container: 'web', address: '10.84.0.2' }], 'the agent names the container: it knows the plugin as REG/ferry:1, nothing was collected')
    t.equal(fetchPort(), 'upgraded', 'the port still answers after the collections')
  })

  await t.test('disable, upgrade to :2, enable: the container keeps its network throughout', async (t) => {
    const busy = await d.docker(['plugin', 'disable', V1])
    t.not(busy.code, 0, 'a plain disable is refused while a network uses the plugin')
    t.match(busy.stderr, /in use/)
    const dis = await d.docker(['plugin', 'disable', '-f', V1], { timeoutMs: 60_000 })
    t.equal(dis.code, 0, dis.stderr)
    t.equal(fetchPort(), 'upgraded', 'disabled: the published port answers')
    t.equal(await inspect('{{.State.Running}}', 'web'), 'true', 'disabled: the container runs')
    t.equal(existsSync(apiSocket), false, 'disabled: the API socket is gone (the agent stopped)')
    t.ok(existsSync(join(libDir, 'ferry', 'state.json')), 'disabled: the state stays in the mounted directory')

    // The CLI asks before taking another repository's reference; without a terminal it takes no for an answer.
    const asked = await d.docker(['plugin', 'upgrade', '--grant-all-permissions', V1, V2], { input: '', timeoutMs: 300_000 })
    t.comment(`docker plugin upgrade without --skip-remote-check: exit ${asked.code}, ${JSON.stringify(asked.stdout + asked.stderr)}`)
    t.equal((await d.dockerOk(['plugin', 'inspect', '-f', '{{.PluginReference}}', V1])).trim(), V1, 'without --skip-remote-check nothing was upgraded')
    const up = await d.docker(['plugin', 'upgrade', '--grant-all-permissions', '--skip-remote-check', V1, V2], { timeoutMs: 300_000 })
    t.equal(up.code, 0, up.stderr)
    t.equal(fetchPort(), 'upgraded', 'upgraded, still disabled: the published port answers')
    type Inspect = Array<{ Name: string, PluginReference: string, Config: { Description: string, Mounts: Array<{ Name: string, Source: string }> }, Settings: { Env: string[], Mounts: Array<{ Name: string, Source: string }> } }>
    const p = JSON.parse(await d.dockerOk(['plugin', 'inspect', V1])) as Inspect
    t.equal(p[0]?.Name, V1, 'the plugin keeps its name')
    t.equal(p[0]?.PluginReference, V2, 'and now comes from :2')
    t.match(p[0]?.Config.Description, /\(build 2\)$/, "and has :2's config")
    t.ok(p[0]?.Settings.Env.includes('ARGS=--reconcile-interval 1 --orphan-grace 1'), 'the settings are kept')
    const sources = (ms: Array<{ Name: string, Source: string }> | undefined) => (ms ?? []).map((m) => `${m.Name}=${m.Source}`).sort()
    t.same(sources(p[0]?.Settings.Mounts), [`lib=${libDir}`, `run=${runDir}`], 'Settings.Mounts still lists the sources set before')
    // ...but the mounts the engine gives the plugin are the config's, and the upgrade replaced the config:
    // the new version's default sources are back. Enabled now, the agent would find an empty state directory.
    t.same(sources(p[0]?.Config.Mounts), [`lib=${defaultLib}`, `run=${defaultRun}`], "Config.Mounts has :2's default sources")
    const reset = await d.docker(['plugin', 'set', V1, `run.source=${runDir}`, `lib.source=${libDir}`])
    t.equal(reset.code, 0, reset.stderr)
    const q = JSON.parse(await d.dockerOk(['plugin', 'inspect', V1])) as Inspect
    t.same(sources(q[0]?.Config.Mounts), [`lib=${libDir}`, `run=${runDir}`], 'set again after the upgrade: Config.Mounts has them')

    const en = await d.docker(['plugin', 'enable', V1], { timeoutMs: 120_000 })
    t.equal(en.code, 0, en.stderr)
    t.match(await observe(endpoints, (v) => Array.isArray(v), { timeoutMs: 20_000 }), [{ container: 'web', address: '10.84.0.2' }],
      'the new agent read the endpoint from the state directory')
    t.equal(fetchPort(), 'upgraded', 'enabled: the published port answers')
    t.equal(await address(), '10.84.0.2', 'the container kept its address')
    t.equal(await inspect('{{.RestartCount}}', 'web'), '0', 'the container was never restarted')
    const second = await d.docker(['run', '-d', '--stop-timeout', '1', '--name', 'second', '--net', 'front', 'bb', 'sleep', '600'])
    t.equal(second.code, 0, `a new container on the network after the upgrade: ${second.stderr}`)
    await d.dockerOk(['rm', '-f', 'second'])
  })

  await t.test('the engine stopped (SIGTERM) and started again: the plugin first, then the container', async (t) => {
    await d.stop()
    t.equal(fetchPort(), '', 'the engine stopped its containers')
    await d.start()
    t.equal(await observe(fetchPort, (v) => v !== '', { timeoutMs: 60_000, everyMs: 250 }), 'upgraded', 'the published port answers again')
    t.equal(await inspect('{{.State.Running}}', 'web'), 'true')
    // Stopped by the engine, the container lost its endpoint and address; started again it asks for any
    // address (no --ip), which ferry's allocator gives past the last one handed out (.3, the second container's).
    const again = await address()
    t.match(again, /^10\.84\.0\.\d+$/, `an address on its network (${again})`)
    t.equal((await d.dockerOk(['plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}'])).trim(), `${V1} true`)
    // The agent's "ready" line (through the engine's log of the plugin) comes before the container's start.
    const ready = [...d.logs().matchAll(/\\"time\\":\\"([^\\"]+)\\"[^\n]*ferry agent ready/g)].map((m) => m[1]).filter(Boolean).at(-1)
    const started = await inspect('{{.State.StartedAt}}', 'web')
    t.ok(ready !== undefined && Date.parse(ready) <= Date.parse(started), `agent ready at ${ready}, container started at ${started}`)
    t.match(await endpoints(), [{ container: 'web', address: again }], 'the agent lists it, named, with that address')
  })

  await t.test('remove everything: nothing left', async (t) => {
    await d.dockerOk(['rm', '-f', 'web'])
    t.equal((await d.docker(['network', 'rm', 'front'])).code, 0)
    t.equal((await d.docker(['plugin', 'disable', V1], { timeoutMs: 60_000 })).code, 0)
    t.equal((await d.docker(['plugin', 'rm', V1])).code, 0)
    t.equal((await d.dockerOk(['plugin', 'ls', '-q'])).trim(), '', 'no plugin')
    t.same(links(), [], 'no link of ferry')
    t.equal(ferryTraces(host), '', 'no rule of ferry (iptables, ip6tables, nft)')
    t.same(readdirSync(join(runDir, 'ferry')), [], 'no API socket')
    t.same([...readdirSync(defaultRun), ...readdirSync(defaultLib)], [], 'the default mount sources were never used')
    registry.kill('SIGTERM')
    await regExited
    t.equal(isAlive(regPid), false, 'the registry process is gone')
  })
})
