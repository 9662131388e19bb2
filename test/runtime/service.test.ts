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
import { fakeWorld, silentLog } from '../harness/fakes.js'
import { FerryError } from '../../src/errors/errors.js'
import { RuntimeService } from '../../src/runtime/service.js'
import { parseAttach, type AttachWire } from '../../src/runtime/spec.js'
import type { InterfaceConfig, NamespaceOps } from '../../src/runtime/netns.js'
import type { LinkFirewall, NatLink } from '../../src/nat/types.js'

class FakeNamespaces implements NamespaceOps {
  calls: string[] = []
  starts = new Map<number, string>()
  failConfigure = false
  async startTime (pid: number) { return this.starts.get(pid) }
  async sameNamespace () { return false }
  async checkForeignNetns (path: string) { this.calls.push(`check ${path}`) }
  async moveLink (dev: string, path: string) { this.calls.push(`move ${dev} ${path}`) }
  async configure (path: string, c: InterfaceConfig) {
    if (this.failConfigure) throw new FerryError('KERNEL', 'ip refused')
    this.calls.push(`configure ${path} ${c.ifname} ${c.cidr} ${c.gateway ?? '-'}`)
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
    hostResolvConf: async () => 'nameserver 10.255.255.53\n', embeddedDns: true,
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
