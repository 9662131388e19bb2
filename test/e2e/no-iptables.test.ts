/**
 * `ferry agent --iptables=false` end to end, as dockerd's flag: ferry never runs
 * iptables. A real engine (itself started with --iptables=false, as a host that
 * leaves the firewall to its admin would run it) uses ferry as its network and
 * IPAM driver: networks and containers work, iptables holds nothing of ferry,
 * and every request that publishes ports — `docker run -p/-P`, `ferry run -p` —
 * is refused with ferry's sentence and leaves nothing behind. Then rules that an
 * earlier run with iptables on left are left alone, and `ferry doctor` warns.
 *
 * Build first (`npm run build`): the agent and the CLI run from dist/.
 */
import t from 'tap'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { execFile, type ExecResult } from '../../src/kernel/exec.js'
import { netns, nsExec, ipJson } from '../harness/netns.js'
import { startDockerd } from '../harness/dockerd.js'
import { ensureBusyboxImage } from '../harness/image.js'
import { NODE, cleanEnv, startAgent, type Agent } from '../harness/agent.js'
import { observe } from '../harness/until.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const ENTRY = join(REPO, 'bin', 'ferry')
const NO_ENGINE = 'unix:///nonexistent/ferry-test-docker.sock'
const REFUSAL = /cannot publish ports: the ferry agent runs with --iptables=false and ferry publishes ports only through iptables \(it has no userland proxy\)/

if (!existsSync(join(REPO, 'dist', 'nat', 'disabled.js'))) t.fail('dist/ is missing or old: run `npm run build` first')

await t.test('the agent with --iptables=false', async (t) => {
  const host = netns(t, 'fyni')
  const d = await startDockerd(t, { ns: host, extraArgs: ['--iptables=false'] })
  await ensureBusyboxImage(d)
  const plugin = `fyni${process.pid}`
  const agent = await startAgent(t, {
    ns: host, pluginName: plugin, dockerd: d,
    args: ['--iptables=false', '--bridge', 'fynidef0', '--bip', '10.72.0.1/24', '--reconcile-interval', '1', '--watch-interval', '1'],
  })
  t.teardown(() => { if (!t.passing()) t.comment(`agent log:\n${agent.logs().split('\n').filter((l) => !l.includes('"component":"dns"')).slice(-60).join('\n')}`) })
  const net = (name: string, ...args: string[]) => d.docker(['network', 'create', '-d', plugin, '--ipam-driver', plugin, ...args, name])
  const run = (...args: string[]) => d.docker(['run', '--stop-timeout', '1', ...args])
  /** A ferry command inside the engine's namespaces, where the agent runs (ferry run makes its namespaces from there). */
  const ferry = (a: Agent, args: string[]): Promise<ExecResult> =>
    execFile([...d.enterArgv(), ...NODE, ENTRY, ...args], { env: { ...cleanEnv(), FERRY_API_SOCKET: a.apiSocket }, allowFailure: true, timeoutMs: 60_000 })
  const endpoints = async () => JSON.parse((await agent.cli(['endpoint', 'ls', '--json'])).stdout) as Array<{ id: string, container: string }>
  const veths = () => ipJson<Array<{ ifname: string }>>(host, ['link']).map((l) => l.ifname).filter((n) => n.startsWith('fyh') || n.startsWith('fyc'))
  const ferryLines = () => nsExec(host, ['iptables-save']).split('\n').filter((l) => /ferry/i.test(l))

  await t.test('ferry status shows the firewall disabled', async (t) => {
    const st = JSON.parse((await agent.cli(['status', '--json'])).stdout) as { firewall?: { iptables: boolean } }
    t.same(st.firewall, { iptables: false, backend: 'disabled', reason: '--iptables=false' })
    t.match((await agent.cli(['status'])).stdout, /^firewall: +disabled \(--iptables=false\)/m)
  })

  await t.test('publishing is refused at once and leaves no endpoint and no veth', async (t) => {
    const front = await net('front', '--subnet', '10.71.0.0/24')
    t.equal(front.code, 0, front.stderr)
    for (const p of [['-p', '8080:80'], ['-P', '--expose', '80'], ['-p', '127.0.0.1::53/udp']]) {
      const r = await run('--rm', '--net', 'front', ...p, 'bb', 'true')
      t.not(r.code, 0, `docker run ${p.join(' ')} fails`)
      t.match(r.stderr, REFUSAL, r.stderr)
      t.same(await endpoints(), [], 'ferry endpoint ls is empty')
      t.same(veths(), [], 'no veth')
    }
    const expose = await run('--rm', '--net', 'front', '--expose', '80', 'bb', 'ip', '-o', '-4', 'addr', 'show', 'eth0')
    t.equal(expose.code, 0, `--expose without publishing is fine: ${expose.stderr}`)
    t.match(expose.stdout, /inet 10\.71\.0\.\d+\/24/)
  })

  await t.test('containers of a network reach each other', async (t) => {
    const web = await run('-d', '--net', 'front', '--name', 'web', 'bb', 'sh', '-c', 'mkdir -p /www && echo hello-noipt > /www/index.html && exec httpd -f -p 80 -h /www')
    t.equal(web.code, 0, web.stderr)
    t.equal((await run('-d', '--net', 'front', '--name', 'cli', 'bb', 'sleep', '600')).code, 0)
    const ip = (await d.dockerOk(['inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'web'])).trim()
    t.match(ip, /^10\.71\.0\.\d+$/)
    const get = await observe(async () => (await d.docker(['exec', 'cli', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 80`])).stdout,
      (g) => /hello-noipt/.test(g), { timeoutMs: 40_000, everyMs: 250 })
    t.match(get, /hello-noipt/, 'by address')
    const ping = await d.docker(['exec', 'cli', 'ping', '-c', '1', '-W', '2', 'web'])
    t.equal(ping.code, 0, `by name: ${ping.stdout}${ping.stderr}`)
    t.same((await endpoints()).map((e) => e.container).sort(), ['cli', 'web'])
  })

  await t.test('enable_icc=false is refused: nothing would block the traffic', async (t) => {
    const r = await net('noicc', '-o', 'com.docker.network.bridge.enable_icc=false')
    t.not(r.code, 0)
    t.match(r.stderr, /enable_icc=false needs iptables .* runs with --iptables=false/, r.stderr)
  })

  await t.test('ferry run: -p refused the same way, the default network works without it', async (t) => {
    const refused = await ferry(agent, ['run', '--name', 'pub', '-p', '8080:80', '--', 'busybox', 'true'])
    t.not(refused.code, 0)
    t.match(refused.stderr, REFUSAL, refused.stderr)
    t.same(JSON.parse((await agent.cli(['ps', '--json'])).stdout), [], 'ferry ps is empty')
    t.same((await endpoints()).map((e) => e.container).sort(), ['cli', 'web'], 'no endpoint left')
    const ok = await ferry(agent, ['run', '--name', 'plain', '--expose', '80', '--', 'busybox', 'ip', '-o', '-4', 'addr', 'show', 'eth0'])
    t.equal(ok.code, 0, ok.stderr)
    t.match(ok.stdout, /inet 10\.72\.0\.\d+\/24/, 'on the default network of --bridge/--bip')
  })

  await t.test('iptables holds nothing of ferry, reconciles included', async (t) => {
    await sleep(1500) // at least one periodic reconcile
    t.equal((await agent.cli(['reconcile'])).code, 0)
    t.same(ferryLines(), [], 'iptables-save shows no FERRY chain and no ferry rule')
    t.notMatch(agent.logs(), /iptables-restore|iptables-save/, 'the agent never ran iptables')
  })

  await t.test('rules of an earlier run with iptables on are left alone, and ferry doctor warns', async (t) => {
    const state = mkdtempSync(join(tmpdir(), 'fyni-state-'))
    t.teardown(() => rmSync(state, { recursive: true, force: true }))
    const name = `fynj${process.pid}`
    const on = await startAgent(t, { ns: host, pluginName: name, stateDir: state, dockerHost: NO_ENGINE, args: ['--reconcile-interval', '0'] })
    const made = await on.cli(['network', 'create', 'old', '--subnet', '10.74.0.0/24'])
    t.equal(made.code, 0, made.stderr)
    const before = ferryLines()
    t.ok(before.some((l) => /^:FERRY-/.test(l)), 'the run with iptables on made its chains')
    await on.destroy()
    const off = await startAgent(t, { ns: host, pluginName: name, stateDir: state, dockerHost: NO_ENGINE, args: ['--iptables=false', '--reconcile-interval', '0'] })
    t.equal((await off.cli(['reconcile'])).code, 0)
    t.same(ferryLines(), before, 'untouched by the start and a reconcile')
    const doctor = await ferry(off, ['doctor', '--json', '--plugin-name', name, '--docker-host', d.host])
    const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ status: string, check: string, what: string }> }).checks
    t.match(checks.find((c) => c.check === 'agent.firewall'), { status: 'warn', what: /--iptables=false, but iptables still holds \d+ line\(s\) of ferry/ }, doctor.stdout)
    t.equal((await off.cli(['network', 'rm', 'old'])).code, 0)
    t.same(ferryLines(), before, 'removing the network does not touch them either')
  })
})
