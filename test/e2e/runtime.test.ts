/**
 * ferry without the Docker engine, end to end: `ferry run` in every mode, links,
 * `container:` sharing, host and none modes, `ferry attach`/`detach` of namespaces
 * the test makes, published ports, the default network from dockerd-style flags
 * (and its refusal of a foreign bridge), and cleanup after every command exits,
 * `kill -9` of `ferry run` included.
 *
 * The agent runs in a test namespace ("host"); every ferry command runs there too
 * (`ip netns exec host node bin/ferry …`), so `--net host` means that namespace.
 * The whole runs once per firewall backend (`--firewall-backend iptables|nftables`):
 * traffic is asserted the same way for both, the firewall's state through what each
 * backend shows (FERRY-LINKS and DNAT rules, or the elements of table inet ferry).
 * Build first (`npm run build`): the agent and the CLI run from dist/.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { readlinkSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { netns, nsExec, ipJson, sh } from '../harness/netns.js'
import { startAgent } from '../harness/agent.js'
import { BACKENDS, ferryTraces, linkTraces, publishedCount } from '../harness/firewall.js'
import {
  NO_ENGINE, alive, requireBuild, startCliAgent, ferry, ferryBg, hostVeths, ps as psOf, running as runningOf, waitFor, type CliCtx,
} from '../harness/ferry-cli.js'

requireBuild(t)

type Ctx = CliCtx
interface PsEntry { name: string, address?: string, watch?: { pid: number }, links: unknown[] }
const ps = (c: Ctx): Promise<PsEntry[]> => psOf<PsEntry>(c)
const running = (c: Ctx, name: string): Promise<PsEntry> => runningOf<PsEntry>(c, name)

for (const backend of BACKENDS) await t.test(`ferry without the engine (--firewall-backend ${backend})`, async (t) => {
  const c: Ctx = await startCliAgent(t, `fyr${backend[0]!}`, '10.61.0.1/24', ['--firewall-backend', backend])
  const { host, agent } = c
  const holders: number[] = []

  await t.test('the default network comes from the dockerd-style flags', async (t) => {
    const nets = JSON.parse((await ferry(c, ['network', 'ls', '--json'])).stdout) as Array<{ name: string, bridge: string, subnet: string, gateway: string, icc: boolean }>
    const def = nets.find((n) => n.name === 'bridge')
    t.match(def, { bridge: 'docker0', subnet: '10.61.0.0/24', gateway: '10.61.0.1', icc: false })
    const addrs = ipJson<Array<{ addr_info: Array<{ local: string }> }>>(host, ['-4', 'addr', 'show', 'docker0'])
    t.same(addrs[0]?.addr_info.map((a) => a.local), ['10.61.0.1'])
  })

  await t.test('bridge mode, links, container: sharing, ICC exceptions', async (t) => {
    const db = ferryBg(t, c, ['run', '--name', 'db', '--expose', '5432', '--', 'busybox', 'nc', '-ll', '-p', '5432', '-e', 'echo', 'db-answer'])
    const dbRec = await running(c, 'db')
    const other = ferryBg(t, c, ['run', '--name', 'other', '--expose', '80', '--', 'busybox', 'nc', '-ll', '-p', '80', '-e', 'echo', 'other-answer'])
    await running(c, 'other')
    holders.push(dbRec.watch!.pid)
    t.equal(dbRec.address, '10.61.0.2', 'first address of the default network')

    const web = ferryBg(t, c, ['run', '--name', 'web', '--link', 'db:database', '-h', 'webhost', '--', 'busybox', 'sleep', '600'])
    await running(c, 'web')
    const links = linkTraces(backend, host)
    t.equal(links.length, 2, `one rule (or set element) each way for 5432/tcp: ${links.join('\n')}`)

    // A second command in web's namespaces: same address, same files, same hostname.
    const inWeb = await ferry(c, ['run', '--net', 'container:web', '--', 'busybox', 'sh', '-c', [
      'hostname', 'ip -o -4 addr show eth0', 'grep database /etc/hosts', 'echo | nc -w 2 database 5432', 'echo | nc -w 2 db 5432',
      'if echo | nc -w 2 other 80; then echo other-reachable; else echo other-blocked; fi',
      'cat /etc/resolv.conf', 'nslookup database', 'nslookup web',
    ].join('; ')])
    t.equal(inWeb.code, 0, inWeb.stderr)
    t.match(inWeb.stdout, /^webhost$/m, 'the hostname of web')
    t.match(inWeb.stdout, /inet 10\.61\.0\.4\//, "web's address")
    t.match(inWeb.stdout, /^10\.61\.0\.2\tdatabase [0-9a-f]{12} db$/m, 'the link in /etc/hosts')
    t.equal((inWeb.stdout.match(/db-answer/g) ?? []).length, 2, 'the linked port answers by alias and by name')
    t.match(inWeb.stdout, /other-blocked/, 'ICC off: a container without a link is not reachable')
    t.match(inWeb.stdout, /^nameserver 10\.61\.0\.1$/m, "ferry's DNS on the gateway")
    t.match(inWeb.stdout, /Name:\s+database\nAddress: 10\.61\.0\.2/, 'the link alias in DNS')
    t.match(inWeb.stdout, /Name:\s+web\nAddress: 10\.61\.0\.4/, 'the container name in DNS')

    // An agent restart keeps the containers and their link rules, and forgets nothing it should keep.
    await agent.restart()
    t.same((await ps(c)).map((p) => p.name).sort(), ['db', 'other', 'web'], 'still attached after a restart')
    t.same(linkTraces(backend, host), links, 'link rules kept across the restart')
    const still = await ferry(c, ['run', '--net', 'container:web', '--', 'busybox', 'sh', '-c', 'echo | nc -w 2 database 5432'])
    t.match(still.stdout, /db-answer/, 'the link still works')

    const envRun = await ferry(c, ['run', '--name', 'web2', '--link', 'db:database', '--', 'busybox', 'sh', '-c', 'env | grep ^DATABASE | sort'])
    t.equal(envRun.stdout, [
      'DATABASE_NAME=/web2/database',
      'DATABASE_PORT=tcp://10.61.0.2:5432',
      'DATABASE_PORT_5432_TCP=tcp://10.61.0.2:5432',
      'DATABASE_PORT_5432_TCP_ADDR=10.61.0.2',
      'DATABASE_PORT_5432_TCP_PORT=5432',
      'DATABASE_PORT_5432_TCP_PROTO=tcp',
    ].join('\n') + '\n', "Docker's link variables")

    web.kill('SIGTERM')
    t.equal(await web.done, 143, 'SIGTERM passed to the command; 128+15')
    db.kill('SIGINT')
    other.kill('SIGINT')
    await Promise.all([db.done, other.done])
    t.same(await ps(c), [], 'everything detached')
    t.same(linkTraces(backend, host), [], 'no link rule left')
    if (backend === 'iptables') t.notMatch(nsExec(host, ['iptables-save']), /FERRY-LINKS/, 'nor the chain')
  })

  await t.test('exit codes, signals, published ports', async (t) => {
    t.equal((await ferry(c, ['run', '--', 'busybox', 'sh', '-c', 'exit 7'])).code, 7, 'exit code passed through')
    const trap = ferryBg(t, c, ['run', '--name', 'trap', '--', 'busybox', 'sh', '-c', 'trap "exit 42" TERM; while true; do sleep 0.1; done'])
    await running(c, 'trap')
    await sleep(300)
    trap.kill('SIGTERM')
    t.equal(await trap.done, 42, 'the command handles the signal itself')

    const pub = ferryBg(t, c, ['run', '--name', 'pub', '-p', '8080:80', '--', 'busybox', 'nc', '-ll', '-p', '80', '-e', 'echo', 'published'])
    await running(c, 'pub')
    const got = await waitFor('the published port', async () => {
      const r = nsExec(host, ['busybox', 'nc', '-w', '2', '10.61.0.1', '8080'], { allowFailure: true, input: '' })
      return r.includes('published') ? r : undefined
    })
    t.match(got, /published/, 'reached through host port 8080')
    t.equal(publishedCount(backend, host, 8080), 1, 'one DNAT rule (or map element)')
    pub.kill('SIGTERM')
    await pub.done
    t.equal(publishedCount(backend, host, 8080), 0, 'DNAT rule (or map element) gone')
  })

  await t.test('none and host modes', async (t) => {
    const none = await ferry(c, ['run', '--net', 'none', '--', 'busybox', 'ip', '-o', 'link'])
    t.equal(none.code, 0, none.stderr)
    t.equal(none.stdout.trim().split('\n').length, 1, 'one interface')
    t.match(none.stdout, /^1: lo: <LOOPBACK,UP/, 'loopback, up')
    const hostNs = nsExec(host, ['readlink', '/proc/self/ns/net']).trim()
    const h = await ferry(c, ['run', '--net', 'host', '-p', '80:80', '--', 'readlink', '/proc/self/ns/net'])
    t.equal(h.stdout.trim(), hostNs, "the host's namespace (the agent's)")
    t.match(h.stderr, /Published ports are discarded when using host network mode/)
    t.same(await ps(c), [])
  })

  await t.test('kill -9 of ferry run: the agent cleans up', async (t) => {
    const victim = ferryBg(t, c, ['run', '--name', 'victim', '-p', '8081:81', '--expose', '81', '--', 'busybox', 'sleep', '600'])
    const rec = await running(c, 'victim')
    const holder = rec.watch!.pid
    holders.push(holder)
    t.equal(hostVeths(c).length, 1)
    t.equal(publishedCount(backend, host, 8081), 1, 'one DNAT rule (or map element)')
    victim.kill('SIGKILL')
    await victim.done
    await waitFor('the agent to notice', async () => ((await ps(c)).length === 0 ? true : undefined))
    t.same(hostVeths(c), [], 'no veth left')
    t.notOk(alive(holder), 'the namespace holder died with ferry run')
    t.equal(publishedCount(backend, host, 8081), 0, 'no port rule (or map element) left')
  })

  await t.test('attach and detach a namespace made by someone else', async (t) => {
    t.equal((await ferry(c, ['network', 'create', 'back', '--subnet', '10.62.0.0/24'])).code, 0)
    const x = netns(t, `fyrx${backend[0]!}`)
    const at = await ferry(c, ['attach', '--netns', `/var/run/netns/${x}`, '--name', 'x', '--net', 'back', '-p', '9000:9000'])
    t.equal(at.code, 0, at.stderr)
    t.match(at.stdout, /x: 10\.62\.0\.2\/24 on back via 10\.62\.0\.1/)
    const again = await ferry(c, ['attach', '--netns', `/var/run/netns/${x}`, '--name', 'x', '--net', 'back', '-p', '9000:9000'])
    t.equal(again.code, 0, 'attach is idempotent')
    const links = ipJson<Array<{ ifname: string, address: string, mtu: number, operstate: string }>>(x, ['link'])
    t.match(links.find((l) => l.ifname === 'eth0'), { address: '02:42:0a:3e:00:02', mtu: 1500 })
    t.match(nsExec(x, ['ip', 'route']), /default via 10\.62\.0\.1 dev eth0/)
    const server = spawn('ip', ['netns', 'exec', x, 'busybox', 'nc', '-l', '-p', '9000', '-e', 'echo', 'attached'], { stdio: 'ignore' })
    t.teardown(() => { server.kill('SIGKILL') })
    const got = await waitFor('the attached namespace to answer', async () => {
      const r = nsExec(host, ['busybox', 'nc', '-w', '2', '10.62.0.1', '9000'], { allowFailure: true, input: '' })
      return r.includes('attached') ? r : undefined
    })
    t.match(got, /attached/)
    t.equal((await ferry(c, ['attach', '--netns', `/var/run/netns/${x}`, '--name', 'x', '--net', 'bridge'])).code, 4, 'the same name elsewhere: conflict')
    t.equal((await ferry(c, ['detach', 'x'])).code, 0)
    t.same(ipJson<Array<{ ifname: string }>>(x, ['link']).map((l) => l.ifname), ['lo'], 'eth0 gone from the namespace')
    const twice = await ferry(c, ['detach', 'x'])
    t.equal(twice.code, 0, 'detach is idempotent')

    // --pid: detached when the process exits.
    const proc = spawn('unshare', ['--net', '--', 'sleep', '600'], { stdio: 'ignore' })
    t.teardown(() => { proc.kill('SIGKILL') })
    await waitFor('unshare', async () => (readlinkSync(`/proc/${proc.pid!}/ns/net`) !== readlinkSync('/proc/self/ns/net') ? true : undefined))
    const byPid = await ferry(c, ['attach', '--pid', String(proc.pid), '--name', 'p', '--net', 'back'])
    t.equal(byPid.code, 0, byPid.stderr)
    proc.kill('SIGKILL')
    await waitFor('the agent to detach p', async () => ((await ps(c)).some((e) => e.name === 'p') ? undefined : true))
    t.equal((await ferry(c, ['network', 'rm', 'back'])).code, 0)
    t.equal((await ferry(c, ['attach', '--netns', '/proc/self/ns/net', '--name', 'self', '--net', 'bridge'])).code, 2, "the agent's own namespace is refused")
  })

  await t.test('nothing is left behind', async (t) => {
    t.same(await ps(c), [])
    t.same(hostVeths(c), [])
    for (const pid of holders) t.notOk(alive(pid), `holder ${pid} is gone`)
    t.notMatch(sh(['pgrep', '-af', 'sleep infinity'], { allowFailure: true }), new RegExp(`^(${holders.join('|')}) `, 'm'))
  })
})

for (const backend of BACKENDS) await t.test(`a bridge that is not ferry's is refused (--firewall-backend ${backend})`, async (t) => {
  const host = netns(t, `fyrf${backend[0]!}`)
  nsExec(host, ['ip', 'link', 'add', 'docker0', 'type', 'bridge'])
  let message = ''
  try {
    await startAgent(t, { ns: host, pluginName: `fyrf${backend[0]!}${process.pid}`, dockerHost: NO_ENGINE, args: ['--bridge', 'docker0', '--firewall-backend', backend], readyTimeoutMs: 15_000 })
  } catch (err) {
    message = (err as Error).message
  }
  t.match(message, /a bridge device named docker0 already exists and is not ferry's/)
  t.same(ipJson<Array<{ ifname: string }>>(host, ['link']).map((l) => l.ifname).sort(), ['docker0', 'lo'], 'left as it was')
  t.equal(ferryTraces(host), '', 'no rule either (iptables-save, ip6tables-save, nft list ruleset)')
})
