/**
 * The CNI plugin (bin/ferry-cni) end to end, against an agent in a test namespace:
 *   1. executed exactly as the CNI spec says (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
 *      CNI_IFNAME, CNI_PATH in the environment, the network configuration on stdin,
 *      the result or error JSON on stdout): ADD with port mappings, the result's dns
 *      (ferry's DNS server, the configuration's `dns`, the runtime's `dns` capability),
 *      CHECK, VERSION, DEL twice, and the spec's error codes; then against a second
 *      agent started with --no-dns-server: name servers only from the configuration,
 *      and CHECK of a result that names ferry's DNS server fails;
 *   2. driven by a real CNI caller, Podman with its CNI backend (Debian's podman;
 *      skipped when it is not installed): a container gets ferry's address, route
 *      and published port, its /etc/resolv.conf (Podman writes it from the result's
 *      dns) names ferry's DNS server first, which resolves another container by its
 *      --network-alias (the aliases capability), and `--rm` gives everything back.
 * Podman runs rootful with a private storage root (vfs), runroot, CNI config and
 * plugin directories; its container namespace is its own, ferry's bridge is in the
 * test namespace. Parts 1 and 2 run once per firewall backend (the agent's
 * `--firewall-backend`); the --no-dns-server agent, which no firewall concerns, once.
 * Build first (`npm run build`).
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, mkdirSync, copyFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { execFile, type ExecResult } from '../../src/kernel/exec.js'
import { netns, nsExec, ipJson, sh } from '../harness/netns.js'
import { NODE, cleanEnv, startAgent, type Agent } from '../harness/agent.js'
import { BACKENDS, publishedCount, type Backend } from '../harness/firewall.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const PLUGIN = join(REPO, 'bin', 'ferry-cni')
const NO_ENGINE = 'unix:///nonexistent/ferry-test-docker.sock'

interface Ctx { host: string, agent: Agent }

/** An agent on `backend` in a new test namespace, with the network `front` made. */
async function frontAgent (t: Test, backend: Backend): Promise<Ctx> {
  const host = netns(t, `fych${backend[0]!}`)
  const agent = await startAgent(t, { ns: host, pluginName: `fyc${backend[0]!}${process.pid}`, dockerHost: NO_ENGINE, args: ['--reconcile-interval', '0', '--firewall-backend', backend] })
  t.teardown(() => { if (!t.passing()) t.comment(agent.logs().split('\n').filter((l) => !l.includes('"component":"dns"')).slice(-60).join('\n')) })
  const created = await agent.cli(['network', 'create', 'front', '--subnet', '10.63.0.0/24'])
  if (created.code !== 0) t.fail(`network create: ${created.stderr}`)
  return { host, agent }
}

function veths ({ host }: Ctx): string[] {
  return ipJson<Array<{ ifname: string }>>(host, ['link']).map((l) => l.ifname).filter((n) => n.startsWith('fyh'))
}

async function ps ({ agent }: Ctx): Promise<Array<{ name: string, owner: string, address?: string }>> {
  return JSON.parse((await agent.cli(['ps', '--json'])).stdout) as Array<{ name: string, owner: string, address?: string }>
}

/** Execute the plugin as a CNI runtime does. */
function cni (command: string, vars: Record<string, string>, config: unknown): Promise<ExecResult> {
  const env = { ...cleanEnv(), CNI_COMMAND: command, CNI_PATH: dirname(PLUGIN), ...vars }
  return execFile([...NODE, PLUGIN], { env, input: config === undefined ? '' : JSON.stringify(config), allowFailure: true, timeoutMs: 30_000 })
}

async function executedAsTheSpecSays (t: Test, c: Ctx, backend: Backend): Promise<void> {
  const { host, agent } = c
  const x = netns(t, 'fycx')
  const conf = {
    cniVersion: '1.0.0', name: 'front', type: 'ferry-cni', apiSocket: agent.apiSocket,
    dns: { nameservers: ['192.0.2.53'], domain: 'front.test', search: ['front.test'], options: ['ndots:2'] },
    runtimeConfig: { portMappings: [{ hostPort: 8095, containerPort: 80, protocol: 'tcp' }] },
  }
  const vars = { CNI_CONTAINERID: 'c0ffee01', CNI_NETNS: `/var/run/netns/${x}`, CNI_IFNAME: 'eth0' }
  const add = await cni('ADD', vars, conf)
  t.equal(add.code, 0, add.stdout + add.stderr)
  const result = JSON.parse(add.stdout) as Record<string, unknown>
  t.match(result, {
    cniVersion: '1.0.0',
    interfaces: [{ name: /^fyh[0-9a-f]{12}$/ }, { name: 'eth0', mac: '02:42:0a:3f:00:02', sandbox: `/var/run/netns/${x}` }],
    ips: [{ address: '10.63.0.2/24', gateway: '10.63.0.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.63.0.1' }],
  })
  t.same(result.dns, { nameservers: ['10.63.0.1', '192.0.2.53'], domain: 'front.test', search: ['front.test'], options: ['ndots:2'] },
    "dns: ferry's DNS server on the gateway, then the configuration's")
  t.match(nsExec(x, ['ip', '-o', '-4', 'addr', 'show', 'eth0']), /10\.63\.0\.2\/24/)
  const ports = JSON.parse((await agent.cli(['port', 'ls', '--json'])).stdout) as Array<{ hostPort: number, containerPort: number }>
  t.match(ports, [{ hostPort: 8095, containerPort: 80 }], 'portMappings published')
  t.equal(publishedCount(backend, host, 8095), 1, 'one DNAT rule (or map element)')
  const again = await cni('ADD', vars, conf)
  t.equal(again.code, 0, 'ADD again answers the same')
  t.same(JSON.parse(again.stdout), result)

  t.equal((await cni('CHECK', vars, conf)).code, 0, 'CHECK passes')
  const checked = await cni('CHECK', vars, { ...conf, prevResult: result })
  t.equal(checked.code, 0, `CHECK against the ADD result passes ${checked.stdout}`)
  nsExec(x, ['ip', 'addr', 'flush', 'dev', 'eth0'])
  const broken = await cni('CHECK', vars, conf)
  t.equal(broken.code, 1, 'CHECK sees a missing address')
  t.match(JSON.parse(broken.stdout), { cniVersion: '1.0.0', code: 100, msg: /lacks 10\.63\.0\.2\/24/ })

  // The runtime's dns capability speaks for one container: its servers and searches replace.
  const y = netns(t, 'fycy')
  const varsY = { CNI_CONTAINERID: 'c0ffee02', CNI_NETNS: `/var/run/netns/${y}`, CNI_IFNAME: 'eth0' }
  const withRuntimeDns = { ...conf, capabilities: { dns: true }, runtimeConfig: { dns: { servers: ['198.51.100.53'], searches: ['rt.test'] } } }
  const addY = await cni('ADD', varsY, withRuntimeDns)
  t.equal(addY.code, 0, addY.stdout + addY.stderr)
  t.same((JSON.parse(addY.stdout) as { dns: unknown }).dns, { nameservers: ['198.51.100.53'], domain: 'front.test', search: ['rt.test'], options: ['ndots:2'] },
    "the runtime's dns capability replaces the fields it gives")
  t.equal((await cni('DEL', varsY, withRuntimeDns)).code, 0)

  const version = await cni('VERSION', {}, undefined)
  t.same(JSON.parse(version.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] })

  t.equal((await cni('DEL', vars, conf)).code, 0)
  t.same(veths(c), [], 'veth gone')
  t.same(await ps(c), [])
  t.equal(publishedCount(backend, host, 8095), 0, 'its DNAT rule (or map element) gone')
  t.equal((await cni('DEL', vars, conf)).code, 0, 'DEL of what is gone succeeds')
  t.equal((await cni('DEL', { CNI_CONTAINERID: 'c0ffee01', CNI_IFNAME: 'eth0' }, conf)).code, 0, 'DEL without CNI_NETNS succeeds')
  const unknown = await cni('CHECK', vars, conf)
  t.match(JSON.parse(unknown.stdout), { code: 3 }, 'CHECK of an unknown container: code 3')

  const errors: Array<[string, Record<string, string>, unknown, number]> = [
    ['not JSON', vars, 'nope', 6],
    ['no name', vars, { cniVersion: '1.0.0', type: 'ferry-cni' }, 7],
    ['unsupported version', vars, { ...conf, cniVersion: '0.2.0' }, 1],
    ['no container id', { ...vars, CNI_CONTAINERID: '' }, conf, 4],
    ['unknown network', vars, { ...conf, name: 'nosuch' }, 100],
    ['a dns search domain with a space', vars, { ...conf, dns: { search: ['a b'] } }, 7],
    ['runtime dns servers that are no addresses', vars, { ...conf, runtimeConfig: { dns: { servers: ['ns1'] } } }, 7],
  ]
  for (const [what, v, c, code] of errors) {
    const r = await execFile([...NODE, PLUGIN], {
      env: { ...cleanEnv(), CNI_COMMAND: 'ADD', ...v }, input: typeof c === 'string' ? c : JSON.stringify(c), allowFailure: true, timeoutMs: 30_000,
    })
    t.equal(r.code, 1, `${what}: exit 1`)
    t.match(JSON.parse(r.stdout), { code, msg: /\S/ }, `${what}: code ${code}`)
  }
  t.same(await ps(c), [], 'no failed ADD left anything')
}

await t.test('an agent without its DNS server (--no-dns-server)', async (t) => {
  const ns = netns(t, 'fycn')
  const quiet = await startAgent(t, { ns, pluginName: `fycn${process.pid}`, dockerHost: NO_ENGINE, args: ['--reconcile-interval', '0', '--no-dns-server'] })
  const made = await quiet.cli(['network', 'create', 'back', '--subnet', '10.64.0.0/24'])
  t.equal(made.code, 0, made.stderr)
  const x = netns(t, 'fycq')
  const vars = { CNI_CONTAINERID: 'c0ffee03', CNI_NETNS: `/var/run/netns/${x}`, CNI_IFNAME: 'eth0' }
  const conf = { cniVersion: '1.0.0', name: 'back', type: 'ferry-cni', apiSocket: quiet.apiSocket }
  const bare = await cni('ADD', vars, conf)
  t.equal(bare.code, 0, bare.stdout + bare.stderr)
  const result = JSON.parse(bare.stdout) as Record<string, unknown>
  t.same(result.dns, {}, 'no DNS server and no dns in the configuration: no name servers')
  const withDns = { ...conf, dns: { nameservers: ['192.0.2.53'], search: ['back.test'] } }
  const again = await cni('ADD', vars, withDns)
  t.same((JSON.parse(again.stdout) as { dns: unknown }).dns, { nameservers: ['192.0.2.53'], search: ['back.test'] }, "only the configuration's")
  t.equal((await cni('CHECK', vars, { ...conf, prevResult: result })).code, 0, 'CHECK passes')
  // As if ADD ran while the agent served DNS, and it was restarted with --no-dns-server since.
  const stale = await cni('CHECK', vars, { ...conf, prevResult: { ...result, dns: { nameservers: ['10.64.0.1'] } } })
  t.equal(stale.code, 1, 'CHECK sees that ferry no longer serves the name server it gave')
  t.match(JSON.parse(stale.stdout), { code: 100, msg: /ferry's DNS server 10\.64\.0\.1 .*--no-dns-server/ })
  t.equal((await cni('DEL', vars, conf)).code, 0)
})

const hasPodman = sh(['sh', '-c', 'command -v podman || true']).trim() !== ''

async function podmanAsTheCaller (t: Test, c: Ctx, backend: Backend): Promise<void> {
  const { host, agent } = c
  const dir = mkdtempSync(join(tmpdir(), 'fypod-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const d of ['cni', 'plugins', 'root', 'runroot', 'tmp', 'rootfs/bin', 'rootfs/etc', 'rootfs/proc', 'rootfs/sys', 'rootfs/dev', 'rootfs/tmp']) mkdirSync(join(dir, d), { recursive: true })
  copyFileSync('/bin/busybox', join(dir, 'rootfs/bin/busybox'))
  for (const c of ['sh', 'ip', 'sleep', 'nc', 'echo', 'cat', 'awk', 'nslookup']) symlinkSync('busybox', join(dir, 'rootfs/bin', c))
  symlinkSync(PLUGIN, join(dir, 'plugins', 'ferry-cni'))
  writeFileSync(join(dir, 'containers.conf'), [
    '[network]', 'network_backend = "cni"', `cni_plugin_dirs = ["${dir}/plugins"]`, `network_config_dir = "${dir}/cni"`,
    '[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', `events_logfile_path = "${dir}/events.log"`, '',
  ].join('\n'))
  writeFileSync(join(dir, 'cni', 'front.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: 'front',
    plugins: [{ type: 'ferry-cni', apiSocket: agent.apiSocket, capabilities: { portMappings: true, aliases: true } }],
  }))
  // tap puts its loader back into NODE_OPTIONS of every child; podman passes its environment to the plugin.
  const podmanArgs = ['env', '-u', 'NODE_OPTIONS', 'podman', '--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp'), '--storage-driver', 'vfs']
  // Limits a sandboxed kernel may refuse to raise are pinned to the current ones.
  const limits = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024']
  const env = { ...cleanEnv(), CONTAINERS_CONF: join(dir, 'containers.conf') }
  const run = (args: string[], timeoutMs = 60_000) =>
    execFile([...podmanArgs, 'run', '--rm', ...limits, '--network', 'front', '--rootfs', join(dir, 'rootfs'), ...args], { env, allowFailure: true, timeoutMs })

  const r = await run(['sh', '-c', 'ip -o -4 addr show eth0; ip route'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /inet 10\.63\.0\.\d+\/24/, "ferry's address")
  t.match(r.stdout, /default via 10\.63\.0\.1 dev eth0/, "ferry's route")
  t.same(await ps(c), [], '--rm: DEL gave everything back')
  t.same(veths(c), [])

  // Names: Podman writes /etc/resolv.conf from the result's dns; ferry's DNS server answers for
  // the other container's --network-alias. Asked of the first name server only: the host's
  // servers that Podman appends are never queried.
  const db = spawn(podmanArgs[0]!, [...podmanArgs.slice(1), 'run', '--rm', ...limits, '--network', 'front', '--network-alias', 'db', '--name', 'fycdb',
    '--rootfs', join(dir, 'rootfs'), 'sleep', '60'], { env, stdio: 'ignore' })
  const dbDone = new Promise((res) => db.once('exit', res))
  t.teardown(async () => { if (db.exitCode === null) { db.kill('SIGKILL'); await dbDone } })
  let dbAddress: string | undefined
  for (let i = 0; i < 100 && dbAddress === undefined; i++) {
    await sleep(200)
    dbAddress = (await ps(c)).find((c) => c.owner === 'cni')?.address
  }
  t.ok(dbAddress, 'the aliased container is attached')
  const lookup = await run(['sh', '-c', "cat /etc/resolv.conf; echo ---; nslookup db $(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf)"])
  t.equal(lookup.code, 0, lookup.stdout + lookup.stderr)
  const [resolv = '', named = ''] = lookup.stdout.split('---\n')
  t.match(resolv, /^nameserver 10\.63\.0\.1$/m, "resolv.conf names ferry's DNS server")
  t.equal(/^nameserver (\S+)$/m.exec(resolv)?.[1], '10.63.0.1', 'as the first name server')
  t.match(named, /^Server:\s+10\.63\.0\.1$/m)
  t.match(named, new RegExp(`^Address: ${(dbAddress ?? 'none').replace(/\./g, '\\.')}$`, 'm'), 'the alias resolves to the other container')
  await execFile([...podmanArgs, 'kill', 'fycdb'], { env, allowFailure: true, timeoutMs: 30_000 })
  await dbDone
  t.same(await ps(c), [], 'the aliased container is gone too')

  // A published port, while the container runs.
  const bg = spawn(podmanArgs[0]!, [...podmanArgs.slice(1), 'run', '--rm', ...limits, '--network', 'front', '-p', '8096:80', '--rootfs', join(dir, 'rootfs'),
    'sh', '-c', 'nc -ll -p 80 -e echo from-podman & sleep 8'], { env, stdio: 'ignore' })
  const done = new Promise((res) => bg.once('exit', res))
  t.teardown(async () => { if (bg.exitCode === null) { bg.kill('SIGKILL'); await done } })
  let answer = ''
  for (let i = 0; i < 60 && !answer.includes('from-podman'); i++) {
    await sleep(200)
    answer = nsExec(host, ['busybox', 'nc', '-w', '1', '10.63.0.1', '8096'], { allowFailure: true, input: '' })
  }
  t.match(answer, /from-podman/, 'the portMappings capability reached ferry')
  t.match(await ps(c), [{ owner: 'cni' }])
  await done
  t.same(await ps(c), [], 'cleaned up after the container')
  t.equal(publishedCount(backend, host, 8096), 0, 'its DNAT rule (or map element) gone')
}

for (const backend of BACKENDS) await t.test(`the CNI plugin (--firewall-backend ${backend})`, async (t) => {
  const c = await frontAgent(t, backend)
  await t.test('the plugin executed as the CNI spec says', (t) => executedAsTheSpecSays(t, c, backend))
  await t.test('Podman (CNI backend) as the caller', { skip: hasPodman ? false : 'podman is not installed (apt-get install podman)' }, (t) => podmanAsTheCaller(t, c, backend))
})

if (existsSync(join(REPO, 'dist', 'cni', 'main.js')) === false) t.fail('dist/ is missing: run `npm run build` first')
