/**
 * Smoke test of the end-to-end harness: a Docker engine in a namespace, the
 * busybox image, containers on `none`, on the default bridge and on a network
 * of Docker's own bridge driver, kill/restart/stop, and a teardown that leaves
 * nothing behind. Timings are printed as comments. startAgent is checked with
 * a stand-in agent (a few lines of node:http) that the engine activates.
 */
import t from 'tap'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { execFile } from '../../src/kernel/exec.js'
import { netns, sh, nsExec } from '../harness/netns.js'
import { startDockerd, type Dockerd } from '../harness/dockerd.js'
import { ensureBusyboxImage } from '../harness/image.js'
import { startAgent } from '../harness/agent.js'

interface IpAddr { ifname: string, addr_info: Array<{ family: string, local: string }> }

const ms = (since: number): string => `${Math.round(performance.now() - since)} ms`

let engine: Dockerd | undefined
let engineNs = ''

/** Root-namespace state the engine must not change: Docker-looking links and the firewall. */
const dockerLinks = (): string[] => sh(['ip', '-o', 'link', 'show']).split('\n')
  .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
  .filter((n) => /^(veth|docker|br-)/.test(n)).sort()
const rootLinksBefore = dockerLinks()
const rootRulesBefore = sh(['iptables-save']).replace(/^#.*\n/gm, '')

await t.test('a Docker engine in a network namespace', async (t) => {
  const ns = netns(t)
  engineNs = ns
  let t0 = performance.now()
  const d = await startDockerd(t, { ns })
  engine = d
  t.comment(`dockerd answered /_ping after ${ms(t0)}`)

  t0 = performance.now()
  await ensureBusyboxImage(d)
  t.comment(`busybox image built and imported in ${ms(t0)}`)

  const hi = await d.docker(['run', '--rm', '--net', 'none', 'bb', 'echo', 'hi'])
  t.equal(hi.code, 0, hi.stderr)
  t.equal(hi.stdout.trim(), 'hi')

  t0 = performance.now()
  const tr = await d.docker(['run', '--rm', '--net', 'none', 'bb', 'true'])
  t.equal(tr.code, 0, tr.stderr)
  t.comment(`docker run --rm --net none bb true took ${ms(t0)}`)

  await t.test('the engine lives in the namespace, with FORWARD DROP there', async (t) => {
    const links = sh(['ip', '-n', ns, '-br', 'link'])
    t.match(links, /docker0/)
    const forward = nsExec(ns, ['iptables', '-S', 'FORWARD'])
    t.match(forward, /-P FORWARD DROP/)
    t.match(forward, /DOCKER-USER/)
  })

  await t.test('a container on the default bridge', async (t) => {
    await d.dockerOk(['run', '-d', '--stop-timeout', '1', '--name', 'sleeper', 'bb', 'sleep', '60'])
    const ip = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'sleeper'])).trim()
    t.match(ip, /^198\.18\.0\.\d+$/, 'address from --bip')
    const ping = nsExec(ns, ['busybox', 'ping', '-c', '1', '-W', '2', ip], { allowFailure: true })
    t.match(ping, /1 (packets )?received/, 'the namespace reaches the container over docker0')
  })

  await t.test('two containers on a network of Docker\'s bridge driver', async (t) => {
    await d.dockerOk(['network', 'create', '-d', 'bridge', 'n1'])
    const subnet = (await d.dockerOk(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}}{{end}}', 'n1'])).trim()
    t.match(subnet, /^198\.19\.\d+\.0\/24$/, 'subnet from --default-address-pool')
    await d.dockerOk(['run', '-d', '--stop-timeout', '1', '--name', 'c1', '--net', 'n1', 'bb', 'sleep', '60'])
    await d.dockerOk(['run', '-d', '--stop-timeout', '1', '--name', 'c2', '--net', 'n1', 'bb', 'sleep', '60'])
    const ping = await d.docker(['exec', 'c1', 'ping', '-c', '2', '-W', '2', 'c2'])
    t.equal(ping.code, 0, `c1 pings c2 by name: ${ping.stdout}${ping.stderr}`)

    const pid = await d.pidOf('c1')
    const ip = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.n1.IPAddress}}', 'c1'])).trim()
    const r = await execFile(['nsenter', '-t', String(pid), '-n', 'ip', '-j', 'addr'])
    const addrs = JSON.parse(r.stdout) as IpAddr[]
    const eth0 = addrs.find((a) => a.ifname === 'eth0')
    t.ok(eth0?.addr_info.some((a) => a.family === 'inet' && a.local === ip), `eth0 of c1 has ${ip}`)

    const key = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.SandboxKey}}', 'c1'])).trim()
    const inside = await execFile([...d.enterArgv(), 'nsenter', `--net=${key}`, 'ip', '-br', 'addr'], { allowFailure: true })
    t.match(inside.stdout, ip, `the SandboxKey ${key} resolves inside the engine's mount namespace: ${inside.stderr}`)
  })

  await t.test('kill, restart and stop', async (t) => {
    const pid = await d.pidOf('c2')
    await d.kill()
    t.equal(d.pid(), undefined, 'dockerd is gone')
    t.ok(sh(['cat', `/proc/${pid}/comm`], { allowFailure: true }).includes('sleep'), 'the container survives SIGKILL of dockerd')

    let t0 = performance.now()
    await d.restart()
    t.comment(`restart after SIGKILL took ${ms(t0)} (the engine stops the running containers, --stop-timeout 1: no live-restore)`)
    const c2 = await d.dockerOk(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'c2'])
    t.equal(c2.trim(), 'exited 137', 'the restarted engine found c2 through its shim and stopped it')

    await d.dockerOk(['run', '-d', '--stop-timeout', '1', '--name', 'late', 'bb', 'sleep', '60'])
    t0 = performance.now()
    await d.stop()
    t.comment(`graceful stop with one running container took ${ms(t0)}`)
    t.equal(d.pid(), undefined)
    await d.restart()
    const late = await d.dockerOk(['inspect', '-f', '{{.State.Status}}', 'late'])
    t.equal(late.trim(), 'exited')
  })
})

t.test('teardown left nothing behind', async (t) => {
  t.ok(engine, 'an engine was started')
  if (!engine) return
  t.same(engine.leftovers(), [], 'no process, cgroup, mount or directory of the engine is left')
  const namespaces = sh(['ip', 'netns', 'list'])
  t.notOk(namespaces.split('\n').some((l) => l.split(' ')[0] === engineNs), `namespace ${engineNs} is gone`)
  t.same(dockerLinks(), rootLinksBefore, 'no veth, docker0 or br- link in the root namespace')
  t.equal(sh(['iptables-save']).replace(/^#.*\n/gm, ''), rootRulesBefore, 'the root namespace\'s iptables are unchanged')
  t.notOk(existsSync('/run/containerd/s'), 'no shim socket on the host')
})

/** A stand-in for `bin/ferry`: `agent …` serves the plugin and API sockets, `status` asks the API. */
const FAKE_FERRY = `
import http from 'node:http'
import fs from 'node:fs'
const argv = process.argv.slice(2)
const opt = (name) => argv[argv.indexOf(name) + 1]
if (argv[0] === 'status') {
  http.get({ socketPath: process.env.FERRY_API_SOCKET, path: '/status' }, (res) => {
    let b = ''
    res.on('data', (d) => { b += d })
    res.on('end', () => { process.stdout.write(b + '\\n'); process.exit(res.statusCode === 200 ? 0 : 1) })
  }).on('error', (e) => { console.error(e.message); process.exit(5) })
} else if (argv[0] === 'agent') {
  const pluginSock = '/run/docker/plugins/' + opt('--plugin-name') + '.sock'
  const api = opt('--api-socket')
  fs.mkdirSync('/run/docker/plugins', { recursive: true })
  fs.mkdirSync(opt('--state-dir'), { recursive: true })
  for (const s of [pluginSock, api]) fs.rmSync(s, { force: true })
  const answers = {
    'Plugin.Activate': { Implements: ['NetworkDriver'] },
    'NetworkDriver.GetCapabilities': { Scope: 'local', ConnectivityScope: 'local' },
  }
  const plugin = http.createServer((req, res) => {
    let b = ''
    req.on('data', (d) => { b += d })
    req.on('end', () => {
      const method = req.url.slice(1)
      console.log('plugin call', method, b)
      res.setHeader('Content-Type', 'application/vnd.docker.plugins.v1+json')
      res.end(JSON.stringify(answers[method] ?? {}))
    })
  })
  const apiServer = http.createServer((req, res) => {
    res.end(JSON.stringify({ ok: true, dockerHost: process.env.DOCKER_HOST, netns: fs.readlinkSync('/proc/self/ns/net') }))
  })
  if (argv.includes('--mute')) setInterval(() => {}, 1000)
  else { plugin.listen(pluginSock); apiServer.listen(api) }
  const stop = () => { for (const s of [pluginSock, api]) fs.rmSync(s, { force: true }); process.exit(0) }
  process.on('SIGTERM', stop)
  console.log('stand-in agent up', argv.join(' '))
} else {
  console.error('boom: unknown command', argv.join(' '))
  process.exit(3)
}
`

let pluginSocket = ''

await t.test('startAgent runs an agent the engine activates', async (t) => {
  const ns = netns(t)
  const d = await startDockerd(t, { ns })
  const dir = mkdtempSync(join(tmpdir(), 'fyf-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const entry = join(dir, 'fake-ferry.mjs')
  writeFileSync(entry, FAKE_FERRY)

  const name = `fyfake${process.pid}`
  const a = await startAgent(t, { ns, pluginName: name, dockerd: d, entry })
  pluginSocket = a.pluginSocket
  t.ok(existsSync(a.pluginSocket), 'the plugin socket is where dockerd looks')
  t.match(a.logs(), /agent --plugin-name fyfake\d+ --state-dir \S+ --api-socket \S+ --log-level debug/)

  const st = await a.cli(['status'])
  t.equal(st.code, 0, st.stderr)
  const status = JSON.parse(st.stdout) as { dockerHost: string, netns: string }
  t.equal(status.dockerHost, d.host, 'DOCKER_HOST points at the engine')
  t.equal(status.netns, sh(['ip', 'netns', 'exec', ns, 'readlink', '/proc/self/ns/net']).trim(), 'the agent runs in the namespace')

  const created = await d.docker(['network', 'create', '-d', name, 'fx1'])
  t.equal(created.code, 0, created.stderr)
  t.match(a.logs(), /plugin call NetworkDriver\.CreateNetwork/, 'the engine called the agent')

  const exit = await a.kill('SIGKILL')
  t.equal(exit.signal, 'SIGKILL')
  t.equal(a.pid(), undefined)
  await a.restart()
  t.ok(a.pid(), 'running again')
  const removed = await d.docker(['network', 'rm', 'fx1'])
  t.equal(removed.code, 0, removed.stderr)
  t.match(a.logs(), /plugin call NetworkDriver\.DeleteNetwork/)

  await t.rejects(startAgent(t, { ns, pluginName: `${name}x`, entry, args: ['--mute'], readyTimeoutMs: 1500 }),
    /did not answer NetworkDriver\.GetCapabilities within 1500 ms/, 'an agent that never answers is reported')

  const dead = join(dir, 'dead.mjs')
  writeFileSync(dead, "console.error('boom: cannot start'); process.exit(3)\n")
  await t.rejects(startAgent(t, { ns, pluginName: `${name}y`, entry: dead }), /exited \(code 3[\s\S]*boom: cannot start/,
    'an agent that exits is reported with its log')
})

t.test('agent teardown removed its socket', async (t) => {
  t.ok(pluginSocket !== '' && !existsSync(pluginSocket), `${pluginSocket} is gone`)
})
