/**
 * The runtime service (src/runtime/service.ts) against fakes: the real driver and
 * IPAM over a memory store and the recording link driver, a recording namespace
 * adapter and link firewall. Bookkeeping, undo on failure, idempotent detach,
 * links, the watchdog, networks made without the engine, the default network.
 */
import t from 'tap'
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fakeWorld, FakePublisher, silentLog } from '../harness/fakes.js'
import { NetworkDriver } from '../../src/driver/network.js'
import { DisabledFirewall } from '../../src/nat/disabled.js'
import { FerryError } from '../../src/errors/errors.js'
import { RuntimeService } from '../../src/runtime/service.js'
import { parseAttach, type AttachWire } from '../../src/runtime/spec.js'
import type { InterfaceConfig, NamespaceOps } from '../../src/runtime/netns.js'
import type { ProcessRef } from '../../src/runtime/types.js'
import type { LinkFirewall, NatLink } from '../../src/nat/types.js'

class FakeNamespaces implements NamespaceOps {
  calls: string[] = []
  starts = new Map<number, string>()
  failConfigure = false
  /** Processes that do not die of SIGTERM. */
  ignoreTerm = new Set<number>()
  signals: string[] = []
  /** Signals and liveness checks, in order. */
  events: string[] = []
  /** Paths in another namespace than every other path (for setProcess). */
  elsewhere = new Set<string>()
  async startTime (pid: number) { this.events.push(`check ${pid}`); return this.starts.get(pid) }
  async sameNamespace (a: string) { return !this.elsewhere.has(a) }
  async signal (p: ProcessRef, sig: NodeJS.Signals) {
    if (this.starts.get(p.pid) !== p.startTime) return false
    this.signals.push(`${sig} ${p.pid}`)
    this.events.push(`${sig} ${p.pid}`)
    if (sig === 'SIGKILL' || !this.ignoreTerm.has(p.pid)) this.starts.delete(p.pid)
    return true
  }
  async checkForeignNetns (path: string) { this.calls.push(`check ${path}`) }
  async moveLink (dev: string, path: string) { this.calls.push(`move ${dev} ${path}`) }
  async configure (path: string, c: InterfaceConfig) {
    if (this.failConfigure) throw new FerryError('KERNEL', 'ip refused')
    this.calls.push(`configure ${path} ${c.ifname} ${c.cidr ?? '-'} ${c.gateway ?? '-'}${c.cidr6 === undefined ? '' : ` ${c.cidr6} ${c.gateway6 ?? '-'}`}`)
  }
  async loopbackUp (path: string) { this.calls.push(`lo ${path}`) }
  async setupFiles (pid: number, _f: { hosts: string, resolv: string }, hostname: string) { this.calls.push(`files ${pid} ${hostname}`) }
  async hasLink () { return true }
}

class FakeLinks implements LinkFirewall {
  links = new Map<string, NatLink>()
  async allowLink (l: NatLink) { this.links.set(l.id, l) }
  async removeLink (id: string) { this.links.delete(id) }
  linkIds () { return [...this.links.keys()] }
}

function world (t: { teardown (fn: () => void): void }) {
  const w = fakeWorld()
  const ns = new FakeNamespaces()
  const fw = new FakeLinks()
  const dir = mkdtempSync(join(tmpdir(), 'fyrs-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const rt = new RuntimeService({
    store: w.store, driver: w.driver, ipam: w.ipam, links: w.links, firewall: fw, ns, filesDir: dir, log: silentLog,
    hostResolvConf: async () => 'nameserver 10.255.255.53\n', embeddedDns: true, logsDir: join(dir, 'logs'), hostname: () => 'thehost',
  })
  const attach = (wire: AttachWire) => rt.attach(parseAttach(wire))
  return { ...w, ns, fw, rt, dir, attach }
}

t.test('attach and detach on a network', async (t) => {
  const w = world(t)
  await w.rt.createNetwork({ name: 'front', subnet: '10.70.0.0/24', internal: false, options: { 'com.docker.network.bridge.enable_icc': 'false' } })
  w.ns.starts.set(100, 'st100')
  const r = await w.attach({ name: 'db', net: 'front', pid: 100, watchPid: 100, expose: ['5432'], publish: ['15432:5432'], setupFiles: true })
  t.match(r.container, { name: 'db', mode: 'network', address: '10.70.0.2', prefixLen: 24, gateway: '10.70.0.1', mac: '02:42:0a:46:00:02', watch: { pid: 100, startTime: 'st100' } })
  t.same(w.ns.calls.slice(1), [
    `move fyc${r.container.endpointId!.slice(0, 12)} /proc/100/ns/net`,
    'configure /proc/100/ns/net eth0 10.70.0.2/24 10.70.0.1',
    `files 100 ${r.container.id.slice(0, 12)}`,
  ])
  t.equal(r.env.HOSTNAME, r.container.id.slice(0, 12))
  t.match(readFileSync(join(w.dir, r.container.id, 'resolv.conf'), 'utf8'), /^nameserver 10\.70\.0\.1$/m, "ferry's DNS on the gateway")
  t.equal(w.driver.endpoints()[0]!.ports[0]!.hostPort, 15432, 'published')
  t.same(w.fw.linkIds(), [])

  w.ns.starts.set(101, 'st101')
  const web = await w.attach({ name: 'web', net: 'front', pid: 101, links: ['db:database'] })
  t.match(web.env, { DATABASE_PORT_5432_TCP: 'tcp://10.70.0.2:5432', DATABASE_NAME: '/web/database' })
  t.match(readFileSync(join(w.dir, web.container.id, 'hosts'), 'utf8'), /^10\.70\.0\.2\tdatabase [0-9a-f]{12} db$/m)
  t.same([...w.fw.links.values()].map((l) => [l.parentIp, l.childIp, l.ports]), [['10.70.0.3', '10.70.0.2', [{ proto: 'tcp', port: 5432 }]]])
  const names = w.rt.dnsNames().find((n) => n.name === 'web')!
  t.same(names.links, [{ target: 'db', alias: 'database' }])

  t.equal(w.rt.dnsNames().length, 2)
  t.ok(await w.rt.detach('db'))
  t.same(w.fw.linkIds(), [], 'the link goes with its target')
  t.notOk(await w.rt.detach('db'), 'idempotent')
  t.notOk(existsSync(join(w.dir, r.container.id)), 'files removed')
  await w.rt.detach('web')
  t.same(w.driver.endpoints(), [])
  const pool = w.ipam.pools()[0]!
  t.same(Object.keys(pool.allocated), ['10.70.0.1'], 'only the gateway stays allocated')
  await w.rt.removeNetwork('front')
  t.same(w.ipam.pools(), [])
  t.same(w.driver.networks(), [])
})

t.test('a failed attach leaves nothing behind', async (t) => {
  const w = world(t)
  await w.rt.createNetwork({ name: 'front', subnet: '10.70.0.0/24', internal: false, options: {} })
  w.ns.failConfigure = true
  await t.rejects(w.attach({ name: 'x', net: 'front', netns: '/run/netns/x' }), /ip refused/)
  t.same(w.rt.containers(), [])
  t.same(w.driver.endpoints(), [])
  t.same(Object.keys(w.ipam.pools()[0]!.allocated), ['10.70.0.1'])
  t.same((await w.links.listLinks()).filter((l) => l.kind === 'veth'), [], 'the veth pair was deleted')
})

t.test('--iptables=false: attach -p and -P are refused and leave nothing; --expose works; links hold no rules', async (t) => {
  const w = fakeWorld()
  const fw = new DisabledFirewall()
  const driver = new NetworkDriver({ store: w.store, links: w.links, firewall: fw, limits: fw, ipam: w.ipam, ports: new FakePublisher(), log: silentLog })
  const ns = new FakeNamespaces()
  const dir = mkdtempSync(join(tmpdir(), 'fyrs-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const rt = new RuntimeService({ store: w.store, driver, ipam: w.ipam, links: w.links, firewall: fw, ns, filesDir: dir, log: silentLog, hostResolvConf: async () => '' })
  await rt.createNetwork({ name: 'front', subnet: '10.70.0.0/24', internal: false, options: {} })
  for (const wire of [{ publish: ['8080:80'] }, { publishAll: true, expose: ['80'] }]) {
    await t.rejects(rt.attach(parseAttach({ name: 'web', net: 'front', netns: '/run/netns/web', ...wire })),
      { code: 'UNSUPPORTED', message: /^cannot publish ports: the ferry agent runs with --iptables=false/ })
    t.same(rt.containers(), [])
    t.same(driver.endpoints(), [])
    t.same(Object.keys(w.ipam.pools()[0]!.allocated), ['10.70.0.1'], 'the address was released')
    t.same((await w.links.listLinks()).filter((l) => l.kind === 'veth'), [], 'no veth')
  }
  await rt.attach(parseAttach({ name: 'db', net: 'front', netns: '/run/netns/db', expose: ['5432'] }))
  const web = await rt.attach(parseAttach({ name: 'web', net: 'front', netns: '/run/netns/web', links: ['db:database'] }))
  t.match(web.env, { DATABASE_PORT_5432_TCP: /^tcp:\/\/10\.70\.0\.\d+:5432$/ }, 'links still give names and variables')
  t.same(fw.linkIds(), [])
})

t.test('names, conflicts, modes', async (t) => {
  const w = world(t)
  await t.rejects(w.attach({ name: 'x', net: 'bridge', netns: '/run/netns/x' }), /no default network/)
  await w.rt.createNetwork({ name: 'front', subnet: '10.70.0.0/24', internal: false, options: {} })
  await t.rejects(w.rt.createNetwork({ name: 'front', internal: false, options: {} }), { code: 'NAME_CONFLICT' })
  await w.attach({ name: 'x', net: 'front', netns: '/run/netns/x' })
  const again = await w.attach({ name: 'x', net: 'front', netns: '/run/netns/x' })
  t.equal(again.container.address, '10.70.0.2', 'the same request again: the same answer')
  await t.rejects(w.attach({ name: 'x', net: 'front', netns: '/run/netns/y' }), { code: 'NAME_CONFLICT' })
  await t.rejects(w.rt.removeNetwork('front'), /active endpoints \(x\)/)
  w.ns.starts.set(5, 's5')
  const none = await w.attach({ name: 'n', net: 'none', pid: 5 })
  t.equal(none.container.mode, 'none')
  t.ok(w.ns.calls.includes('lo /proc/5/ns/net'))
  const shared = await w.attach({ name: 's', net: 'container:n', pid: 6 })
  t.equal(shared.enterPid, 5, 'enter the namespace of n')
  t.equal(shared.container.hostname, none.container.hostname)
  await t.rejects(w.attach({ name: 'l', net: 'front', netns: '/run/netns/l', links: ['n'] }), /not on the same network/)
  await t.rejects(w.attach({ name: 'l', net: 'front', netns: '/run/netns/l', links: ['ghost'] }), { code: 'ENDPOINT_NOT_FOUND' })
  t.same(w.rt.containers().map((c) => c.name).sort(), ['n', 's', 'x'])
})

t.test('the watchdog detaches containers whose process or namespace is gone', async (t) => {
  const w = world(t)
  await w.rt.createNetwork({ name: 'front', subnet: '10.70.0.0/24', internal: false, options: {} })
  w.ns.starts.set(7, 'a')
  w.ns.starts.set(8, 'b')
  await w.attach({ name: 'p', net: 'front', pid: 7, watchPid: 7 })
  await w.attach({ name: 'q', net: 'front', pid: 8, watchPid: 8 })
  const r = await w.attach({ name: 'path', net: 'front', netns: '/run/netns/z' })
  t.same(await w.rt.watchOnce(), [])
  w.ns.starts.set(7, 'reused')           // the pid now belongs to another process
  w.ns.starts.delete(8)                  // gone
  await w.links.deleteLink(`fyh${r.container.endpointId!.slice(0, 12)}`)   // namespace destroyed
  t.same((await w.rt.watchOnce()).sort(), ['p', 'path', 'q'])
  t.same(w.rt.containers(), [])
})

t.test('the default network', async (t) => {
  const w = world(t)
  await w.rt.ensureDefaultNetwork({ bridge: 'docker0', bip: '10.71.0.1/16', icc: false, masquerade: true })
  const def = w.rt.network('bridge')
  t.match(def, { bridge: 'docker0', subnet: '10.71.0.0/16', gateway: '10.71.0.1', icc: false })
  await w.rt.ensureDefaultNetwork({ bridge: 'docker0', bip: '10.71.0.1/16', icc: false, masquerade: true })
  t.equal(w.driver.networks().length, 1, 'the same flags again: kept')
  await w.rt.ensureDefaultNetwork({ bridge: 'docker0', bip: '10.72.0.1/24', icc: true, masquerade: true })
  t.match(w.rt.network('bridge'), { subnet: '10.72.0.0/24', icc: true }, 'other flags, nothing attached: made again')
  await w.rt.ensureDefaultNetwork(undefined)
  t.same(w.driver.networks(), [], 'no --bridge: the one ferry made goes')
  await w.links.createBridge('docker0')
  await t.rejects(w.rt.ensureDefaultNetwork({ bridge: 'docker0', icc: true, masquerade: true }), /already exists and is not ferry's/)
  t.same(w.ipam.pools(), [], 'no pool taken')
})

t.test('-e is kept, and a link to the container gets ALIAS_ENV_* variables', async (t) => {
  const w = world(t)
  await w.rt.createNetwork({ name: 'front', subnet: '10.70.0.0/24', internal: false, options: {} })
  const db = await w.attach({ name: 'db', net: 'front', pid: 100, owner: 'run', expose: ['5432'], env: ['POSTGRES_USER=app', 'PATH=/opt/bin'] })
  t.same(db.container.env, ['POSTGRES_USER=app', 'PATH=/opt/bin'], 'kept in the record')
  t.same(w.store.state.containers?.db?.env, ['POSTGRES_USER=app', 'PATH=/opt/bin'], 'and in the state')
  t.notOk('POSTGRES_USER' in db.env, "the agent does not hand a container's own -e back: ferry run sets them")
  const web = await w.attach({ name: 'web', net: 'front', pid: 101, owner: 'run', links: ['db:database'] })
  t.match(web.env, { DATABASE_ENV_POSTGRES_USER: 'app', DATABASE_PORT_5432_TCP: 'tcp://10.70.0.2:5432' })
  t.notOk('DATABASE_ENV_PATH' in web.env, 'PATH is not passed on (Docker)')
  t.notOk('env' in web.container, 'no -e: no field')

  // A record of an older agent (no env field) still links.
  delete w.store.state.containers!.db!.env
  const old = await w.attach({ name: 'web2', net: 'front', pid: 102, owner: 'run', links: ['db:database'] })
  t.equal(Object.keys(old.env).filter((k) => k.includes('_ENV_')).length, 0)
  t.match(old.env, { DATABASE_NAME: '/web2/database' })
})

t.test('--net host: registered by name, nothing configured; container: of it enters its process', async (t) => {
  const w = world(t)
  w.ns.starts.set(300, 's300')
  const h = await w.attach({ name: 'h', net: 'host', pid: 300, watchPid: 300, owner: 'run', publish: ['80:80'], env: ['A=1'] })
  t.match(h.container, { name: 'h', mode: 'host', netns: '/proc/300/ns/net', pid: 300, hostname: 'thehost' })
  t.same(h.warnings, ['WARNING: Published ports are discarded when using host network mode'])
  t.equal(h.env.HOSTNAME, 'thehost')
  t.same(w.ns.calls, [], 'no namespace touched, no files mounted')
  t.equal(h.container.filesDir, undefined)
  t.same(w.driver.endpoints(), [])
  t.same(w.rt.dnsNames(), [], 'not in DNS: not on a network')
  const s = await w.attach({ name: 's', net: 'container:h', pid: 301, owner: 'run' })
  t.equal(s.enterPid, 300, "the sharer enters the host container's process")
  t.equal(s.container.sharesWith, 'h')
  t.same(w.rt.containers().map((c) => c.name).sort(), ['h', 's'])
  w.ns.starts.delete(300)
  t.same(await w.rt.watchOnce(), ['h'], 'its process gone: detached')
})

t.test('ferry run -d: a log, the command followed instead of the holder, cleanup when it exits', async (t) => {
  const w = world(t)
  await w.rt.createNetwork({ name: 'front', subnet: '10.70.0.0/24', internal: false, options: {} })
  w.ns.starts.set(400, 'holder')
  const r = await w.attach({ name: 'bg', net: 'front', pid: 400, watchPid: 400, owner: 'run', detached: true, expose: ['80'] })
  const log = join(w.dir, 'logs', 'bg.log')
  t.match(r.container, { detached: true, log, watch: { pid: 400 } })
  t.equal(readFileSync(log, 'utf8'), '', 'an empty log, ready for the command')

  await t.rejects(w.rt.setProcess('bg', 999), /process 999 does not exist/)
  w.ns.starts.set(401, 'cmd')
  w.ns.elsewhere.add('/proc/401/ns/net')
  await t.rejects(w.rt.setProcess('bg', 401), /not in the network namespace of bg/)
  w.ns.elsewhere.clear()
  await t.rejects(w.rt.setProcess('nope', 401), { code: 'ENDPOINT_NOT_FOUND' })
  const rec = await w.rt.setProcess('bg', 401)
  t.match(rec, { process: { pid: 401, startTime: 'cmd' }, watch: { pid: 401, startTime: 'cmd' }, pid: 401, netns: '/proc/401/ns/net' })
  t.same(w.store.state.containers?.bg?.process, { pid: 401, startTime: 'cmd' }, 'persisted')

  w.ns.starts.delete(400)
  t.same(await w.rt.watchOnce(), [], 'the holder going changes nothing')
  w.ns.starts.delete(401)
  t.same(await w.rt.watchOnce(), ['bg'], 'the command exiting detaches')
  t.same(w.driver.endpoints(), [])
  t.ok(existsSync(log), 'the log stays, for a look at why it exited')
  t.equal(await w.rt.stopContainer('bg', { graceMs: 0, removeLog: true }), 'bg', 'ferry rm of a container already gone removes its log')
  t.notOk(existsSync(log))
  await t.rejects(w.rt.stopContainer('bg', { graceMs: 0, removeLog: true }), { code: 'ENDPOINT_NOT_FOUND' }, 'nothing left: not found')

  // A foreground run: the process is known for ferry stop, the holder stays watched.
  w.ns.starts.set(500, 'h5')
  w.ns.starts.set(501, 'c5')
  await w.attach({ name: 'fg', net: 'front', pid: 500, watchPid: 500, owner: 'run' })
  t.match(await w.rt.setProcess('fg', 501), { process: { pid: 501 }, watch: { pid: 500 }, pid: 500, netns: '/proc/500/ns/net' })
  await w.attach({ name: 'att', net: 'front', netns: '/run/netns/att' })
  await t.rejects(w.rt.setProcess('att', 501), /not started by ferry run/)
})

t.test('ferry stop and ferry rm', async (t) => {
  const w = world(t)
  await w.rt.createNetwork({ name: 'front', subnet: '10.70.0.0/24', internal: false, options: {} })
  const start = async (name: string, pid: number) => {
    w.ns.starts.set(pid, `st${pid}`)
    await w.attach({ name, net: 'front', pid, watchPid: pid, owner: 'run', detached: true })
    await w.rt.setProcess(name, pid)
  }
  await start('polite', 600)
  t.equal(await w.rt.stopContainer('polite', { graceMs: 1000, removeLog: false }), 'polite')
  t.same(w.ns.signals, ['SIGTERM 600'], 'SIGTERM was enough')
  t.same(w.rt.containers(), [])
  t.ok(existsSync(join(w.dir, 'logs', 'polite.log')), 'stop keeps the log')

  await start('stubborn', 601)
  w.ns.ignoreTerm.add(601)
  w.ns.events.length = 0
  await w.rt.stopContainer('stubborn', { graceMs: 150, removeLog: true })
  t.same(w.ns.signals.slice(1), ['SIGTERM 601', 'SIGKILL 601'], 'SIGKILL after the grace period')
  const between = w.ns.events.slice(w.ns.events.indexOf('SIGTERM 601') + 1, w.ns.events.indexOf('SIGKILL 601'))
  t.ok(between.length >= 1 && between.every((e) => e === 'check 601'), `the process was seen alive after SIGTERM before SIGKILL was sent (${between.length} checks)`)
  t.notOk(existsSync(join(w.dir, 'logs', 'stubborn.log')), 'rm removes the log')

  await start('forced', 602)
  await w.rt.stopContainer('forced', { graceMs: 0, removeLog: true })
  t.same(w.ns.signals.slice(3), ['SIGKILL 602'], 'rm -f: SIGKILL at once')

  await start('gone', 603)
  w.ns.starts.delete(603)
  await w.rt.stopContainer('gone', { graceMs: 1000, removeLog: false })
  t.same(w.ns.signals.length, 4, 'a process already gone is not signalled')
  t.same(w.rt.containers(), [])

  await w.attach({ name: 'att', net: 'front', netns: '/run/netns/att' })
  await t.rejects(w.rt.stopContainer('att', { graceMs: 0, removeLog: true }), /ferry detach att/)
  t.equal(w.rt.containers().length, 1, 'left alone')
})

t.test("ferry's DNS servers for a container: the gateway of each family it has an address in", async (t) => {
  const w = world(t)
  await w.rt.createNetwork({ name: 'dual', subnet: '10.71.0.0/24', internal: false, options: {} })
  w.ns.starts.set(100, 'st100')
  const r = await w.attach({ name: 'c6', net: 'dual', pid: 100, watchPid: 100 })
  t.same(w.rt.resolverOf(r.container).nameservers, ['10.71.0.1'], 'IPv4 only: the IPv4 gateway')
  await w.rt.detach('c6')
  await w.rt.createNetwork({ name: 'dual6', ipv6: true, subnet: '10.72.0.0/24', subnet6: 'fd00:72::/64', internal: false, options: {} })
  const d = await w.attach({ name: 'd6', net: 'dual6', netns: '/run/netns/d6' })
  t.same(w.rt.resolverOf(d.container).nameservers, ['10.72.0.1', 'fd00:72::1'], 'a dual-stack endpoint: both gateways, IPv4 first')
  // An IPv6-only endpoint (as a CNI result may describe one): the IPv6 gateway alone.
  const ep = w.store.state.endpoints[d.container.endpointId!]!
  ep.address = ''
  t.same(w.rt.resolverOf(d.container).nameservers, ['fd00:72::1'], 'an IPv6-only endpoint: the IPv6 gateway')
  ep.address = '10.72.0.2'
  await w.rt.detach('d6')
})

t.test('dual-stack networks without the engine: both families, --ip6, release, rollback', async (t) => {
  const w = world(t)
  await t.rejects(w.rt.createNetwork({ name: 'x', subnet6: 'fd00:73::/64', internal: false, options: {} }), /IPv6 setting but the network is not dual-stack: add --ipv6/)
  await t.rejects(w.rt.createNetwork({ name: 'x', ipv6: true, subnet6: '10.0.0.0/24', internal: false, options: {} }), /--subnet 10\.0\.0\.0\/24 is not IPv6 CIDR/)
  t.same(w.ipam.pools(), [], 'refused before any pool is taken')
  const net = await w.rt.createNetwork({ name: 'dual', ipv6: true, subnet: '10.73.0.0/24', subnet6: 'fd00:73::/64', gateway6: 'fd00:73::fe', internal: false, options: {} })
  t.match(net, { subnet: '10.73.0.0/24', gateway: '10.73.0.1', subnet6: 'fd00:73::/64', gateway6: 'fd00:73::fe' })
  const auto = await w.rt.createNetwork({ name: 'auto6', ipv6: true, internal: false, options: {} })
  t.match(auto.subnet6, /^fd[0-9a-f:]+::\/64$/, 'no IPv6 subnet given: a /64 of the default IPv6 pool')
  await w.rt.removeNetwork('auto6')

  w.ns.starts.set(100, 'st100')
  const a = await w.attach({ name: 'a', net: 'dual', pid: 100, watchPid: 100, setupFiles: true })
  t.match(a.container, { address: '10.73.0.2', prefixLen: 24, gateway: '10.73.0.1', address6: 'fd00:73::1', prefixLen6: 64, gateway6: 'fd00:73::fe' })
  t.equal(w.ns.calls.find((c) => c.startsWith('configure')), 'configure /proc/100/ns/net eth0 10.73.0.2/24 10.73.0.1 fd00:73::1/64 fd00:73::fe')
  t.match(w.store.state.endpoints[a.container.endpointId!], { address: '10.73.0.2', address6: 'fd00:73::1' }, 'the endpoint has both: DNS and the firewall see both')
  t.match(readFileSync(join(w.dir, a.container.id, 'hosts'), 'utf8'), new RegExp(`^10\\.73\\.0\\.2\t${a.container.hostname}\nfd00:73::1\t${a.container.hostname}\n$`, 'm'), 'both addresses in /etc/hosts')
  const b = await w.attach({ name: 'b', net: 'dual', netns: '/run/netns/b', ip6: 'fd00:73::99' })
  t.equal(b.container.address6, 'fd00:73::99', '--ip6')
  await t.rejects(w.attach({ name: 'c', net: 'dual', netns: '/run/netns/c', ip6: 'fd00:73::99' }), /in use|allocated/i, 'an IPv6 address in use is refused')
  await t.rejects(w.attach({ name: 'c', net: 'dual', netns: '/run/netns/c', ip6: 'fd00:99::5' }), /fd00:99::5/, 'outside the subnet')
  w.ns.failConfigure = true
  await t.rejects(w.attach({ name: 'c', net: 'dual', netns: '/run/netns/c' }), /ip refused/)
  w.ns.failConfigure = false
  const pool6 = () => Object.keys(w.ipam.pools().find((p) => p.subnet === 'fd00:73::/64')!.allocated).sort()
  t.same(pool6(), ['fd00:73::1', 'fd00:73::99', 'fd00:73::fe'], 'failed attaches gave their IPv6 addresses back')

  await w.rt.createNetwork({ name: 'v4', subnet: '10.74.0.0/24', internal: false, options: {} })
  await t.rejects(w.attach({ name: 'c', net: 'v4', netns: '/run/netns/c', ip6: 'fd00:74::5' }), /--ip6 fd00:74::5: network v4 has no IPv6 subnet \(create it with --ipv6\)/)

  await w.rt.detach('a')
  await w.rt.detach('b')
  t.same(pool6(), ['fd00:73::fe'], 'detach released the IPv6 addresses')
  await w.rt.removeNetwork('dual')
  await w.rt.removeNetwork('v4')
  t.same(w.ipam.pools(), [], 'both pools of the dual-stack network released')
})

t.test('IPv6-only networks without the engine (--ipv4=false --ipv6): one IPv6 address, its route, DNS and hosts, --ip refused', async (t) => {
  const w = world(t)
  await t.rejects(w.rt.createNetwork({ name: 'x', ipv4: false, internal: false, options: {} }), /at least one address family: --ipv4=false takes --ipv6/)
  await t.rejects(w.rt.createNetwork({ name: 'x', ipv4: false, ipv6: true, subnet: '10.77.0.0/24', internal: false, options: {} }), /10\.77\.0\.0\/24 is an IPv4 setting but the network is IPv6-only/)
  t.same(w.ipam.pools(), [], 'refused before any pool is taken')
  const net = await w.rt.createNetwork({ name: 'six', ipv4: false, ipv6: true, subnet6: 'fd00:77::/64', internal: false, options: {} })
  t.match(net, { subnet6: 'fd00:77::/64', gateway6: 'fd00:77::1' })
  t.same([net.subnet, net.gateway, net.poolId], [undefined, undefined, undefined], 'no IPv4 side')
  t.same(w.ipam.pools().map((p) => p.subnet), ['fd00:77::/64'], 'one pool: the IPv6 one')
  const auto = await w.rt.createNetwork({ name: 'auto', ipv4: false, ipv6: true, internal: false, options: {} })
  t.match(auto.subnet6, /^fd[0-9a-f:]+::\/64$/, 'no subnet given: a /64 of the default IPv6 pool')
  t.equal(auto.subnet, undefined)
  await w.rt.removeNetwork('auto')

  w.ns.starts.set(100, 'st100')
  const a = await w.attach({ name: 'a', net: 'six', pid: 100, watchPid: 100, setupFiles: true })
  t.match(a.container, { address6: 'fd00:77::2', prefixLen6: 64, gateway6: 'fd00:77::1' })
  t.same([a.container.address, a.container.gateway], [undefined, undefined], 'no IPv4 address')
  t.equal(w.ns.calls.find((c) => c.startsWith('configure')), 'configure /proc/100/ns/net eth0 - - fd00:77::2/64 fd00:77::1', 'the IPv6 address and default route only')
  t.same(w.rt.resolverOf(a.container).nameservers, ['fd00:77::1'], 'ferry\'s DNS on the IPv6 gateway')
  t.match(readFileSync(join(w.dir, a.container.id, 'hosts'), 'utf8'), new RegExp(`^fd00:77::2\t${a.container.hostname}\n$`, 'm'), 'its IPv6 address in /etc/hosts')
  await t.rejects(w.attach({ name: 'b', net: 'six', netns: '/run/netns/b', ip: '10.77.0.5' }), /--ip 10\.77\.0\.5: network six is IPv6-only \(created with --ipv4=false\): give --ip6/)
  const b = await w.attach({ name: 'b', net: 'six', netns: '/run/netns/b', ip6: 'fd00:77::99', links: ['a:alias'] })
  t.equal(b.container.address6, 'fd00:77::99', '--ip6')
  t.same(w.rt.desiredLinks().map((l) => [l.parentIp, l.childIp]), [['fd00:77::99', 'fd00:77::2']], 'a --link is an IPv6 exception only')
  await w.rt.detach('b')
  await w.rt.detach('a')
  await w.rt.removeNetwork('six')
  t.same(w.ipam.pools(), [], 'the IPv6 pool released')
})

t.test('the default network with --ipv6 and --fixed-cidr-v6', async (t) => {
  const w = world(t)
  await w.rt.ensureDefaultNetwork({ bridge: 'docker0', bip: '10.75.0.1/24', icc: true, masquerade: true, ipv6: true, fixedCidr6: 'fd00:75::/64' })
  t.match(w.rt.network('bridge'), { subnet: '10.75.0.0/24', subnet6: 'fd00:75::/64', gateway6: 'fd00:75::1' })
  await w.rt.ensureDefaultNetwork({ bridge: 'docker0', bip: '10.75.0.1/24', icc: true, masquerade: true, ipv6: true, fixedCidr6: 'fd00:75::/64' })
  t.equal(w.driver.networks().length, 1, 'the same flags again: kept')
  await w.rt.ensureDefaultNetwork({ bridge: 'docker0', bip: '10.75.0.1/24', icc: true, masquerade: true })
  t.equal(w.rt.network('bridge').subnet6, undefined, 'without --ipv6: made again IPv4-only')
  t.equal(w.ipam.pools().length, 1, 'the IPv6 pool was released')
  await w.rt.ensureDefaultNetwork(undefined)
})

t.test('a --link on a dual-stack network: an ICC exception of each family', async (t) => {
  const w = world(t)
  await w.rt.createNetwork({ name: 'dual', ipv6: true, subnet: '10.76.0.0/24', subnet6: 'fd00:76::/64', internal: false, options: { 'com.docker.network.bridge.enable_icc': 'false' } })
  const db = await w.attach({ name: 'db', net: 'dual', netns: '/run/netns/db', expose: ['5432'] })
  const web = await w.attach({ name: 'web', net: 'dual', netns: '/run/netns/web', links: ['db:database'] })
  const id = `${web.container.id.slice(0, 12)}-database`
  t.same([...w.fw.links.values()].map((l) => [l.id, l.parentIp, l.childIp, l.ports]), [
    [id, web.container.address, db.container.address, [{ proto: 'tcp', port: 5432 }]],
    [`6-${id}`, web.container.address6, db.container.address6, [{ proto: 'tcp', port: 5432 }]],
  ])
  await w.rt.detach('db')
  t.same(w.fw.linkIds(), [], 'both go with their target')
  await w.rt.detach('web')
})

t.test('containers and networks by name, full id or id prefix (src/util/resolve.ts); detach, stop and rm want 12+ characters of an id', async (t) => {
  const w = world(t)
  const net = await w.rt.createNetwork({ name: 'front', subnet: '10.78.0.0/24', internal: false, options: {} })
  await w.rt.createNetwork({ name: 'spare', subnet: '10.79.0.0/24', internal: false, options: {} })
  w.ns.starts.set(100, 'st100')
  const a = await w.attach({ name: 'one', net: net.id.slice(0, 6), pid: 100 })
  t.equal(a.container.networkId, net.id, 'attach --net by an id prefix')
  t.equal(w.rt.network(net.id).id, net.id)
  t.equal(w.rt.network('front').id, net.id)
  await t.rejects(w.attach({ name: 'two', net: 'nope', pid: 100 }), { code: 'NETWORK_NOT_FOUND', message: /^no ferry network is named "nope" or has that id; known: (front|spare) / })
  const id = a.container.id
  t.equal(w.rt.container(id).name, 'one', 'full id')
  t.equal(w.rt.container(id.slice(0, 12)).name, 'one', 'the short id ferry ps shows')
  t.throws(() => w.rt.container(id.slice(0, 11)), { code: 'ENDPOINT_NOT_FOUND', message: /id prefix of 12\+ characters; ferry ps lists them/ }, 'shorter prefixes name nothing')
  t.throws(() => w.rt.container('bad name'), { code: 'INVALID_REQUEST' })
  t.notOk(await w.rt.detach(id.slice(0, 4)), 'a short prefix is no container: detach stays a no-op')
  t.equal(w.rt.containers().length, 1)
  await t.rejects(w.rt.removeNetwork(net.id.slice(0, 4)), { code: 'NETWORK_NOT_FOUND' }, 'network rm wants 12+ characters of an id too')
  t.ok(await w.rt.detach(id.slice(0, 12)), 'detach by the short id')
  t.same(w.rt.containers(), [])
  await w.rt.removeNetwork(net.id.slice(0, 12))
  t.same(w.driver.networks().map((n) => w.rt.networkName(n.id)), ['spare'])
})
