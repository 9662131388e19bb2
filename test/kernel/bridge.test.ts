/**
 * The bridge data plane for real: ferry's NetworkDriver (dist/, build first) with
 * the real NetlinkDriver, a real Ipam over a FileStore in a temporary directory,
 * and recording fakes of the firewall and port publisher, all running in a child
 * inside a fresh "host" namespace (test/fixtures/bridge-world.mjs through the
 * nsnode harness). Two more namespaces play the containers: the container ends
 * are moved there by hand, addressed and routed as the engine would, and pinged.
 * Checked against `ip -j` and `bridge -j` output: the network's bridge and ports,
 * teardown back to a clean namespace, an agent killed with SIGKILL and restarted
 * over the same state, and a bridge deleted by hand that reconcile brings back.
 */
import t, { type Test } from 'tap'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ipJson, netns, sh } from '../harness/netns.js'
import { REPO_ROOT, nsNode, type NsNode, type TeardownHost } from '../harness/nsnode.js'
import type { Ipam } from '../../src/ipam/ipam.js'
import type { NetworkDriver } from '../../src/driver/network.js'
import type { State } from '../../src/store/store.js'
import { defaultBridgeName, macForIp, vethNames } from '../../src/bridge/names.js'

/** What test/fixtures/bridge-world.mjs answers. */
interface BridgeWorld {
  open (stateDir: string): Promise<void>
  requestPool: Ipam['requestPool']
  requestAddress: Ipam['requestAddress']
  releaseAddress: Ipam['releaseAddress']
  releasePool: Ipam['releasePool']
  createNetwork: NetworkDriver['createNetwork']
  deleteNetwork: NetworkDriver['deleteNetwork']
  createEndpoint: NetworkDriver['createEndpoint']
  deleteEndpoint: NetworkDriver['deleteEndpoint']
  reconcile: NetworkDriver['reconcile']
  state (): State
  firewallCalls (): string[]
}

interface IpLink { ifindex: number, ifname: string, mtu: number, address: string, flags: string[], master?: string, linkinfo?: { info_kind?: string } }
interface IpAddr { ifname: string, addr_info: Array<{ family: string, local: string, prefixlen: number }> }
interface BridgePort { ifname: string, master?: string, hairpin?: boolean }

const NET = '5a'.repeat(32)
const EP1 = 'e1'.repeat(32)
const EP2 = 'e2'.repeat(32)
const SUBNET = '10.77.0.0/24'
const GATEWAY = '10.77.0.1'
const MTU = 1400
const BRIDGE = defaultBridgeName(NET)
const V1 = vethNames(EP1)
const V2 = vethNames(EP2)

const links = (ns: string): IpLink[] => ipJson<IpLink[]>(ns, ['-d', 'link', 'show'])
const linkOf = (ns: string, name: string): IpLink | undefined => links(ns).find((l) => l.ifname === name)
const inet = (ns: string, dev: string): string[] =>
  ipJson<IpAddr[]>(ns, ['addr', 'show', 'dev', dev]).flatMap((a) => a.addr_info.filter((i) => i.family === 'inet').map((i) => `${i.local}/${i.prefixlen}`))
const ports = (ns: string): BridgePort[] => JSON.parse(sh(['bridge', '-n', ns, '-d', '-j', 'link', 'show']) || '[]') as BridgePort[]
const ferryLinks = (ns: string): string[] => links(ns).map((l) => l.ifname).filter((n) => n.startsWith('fy')).sort()

/** One ICMP echo from namespace `from` to `ip` (busybox ping: no ping binary on the machine). */
function pings (from: string, ip: string, waitS = 3): boolean {
  const out = sh(['ip', 'netns', 'exec', from, 'busybox', 'ping', '-c', '1', '-W', String(waitS), ip], { allowFailure: true })
  return out.includes('1 packets received')
}

/** What the engine does at join: move the container end into the sandbox, rename, address, route. */
function plugContainer (host: string, container: string, ifname: string, cidr: string): void {
  sh(['ip', '-n', host, 'link', 'set', ifname, 'netns', container])
  sh(['ip', '-n', container, 'link', 'set', ifname, 'name', 'eth0'])
  sh(['ip', '-n', container, 'addr', 'add', cidr, 'dev', 'eth0'])
  sh(['ip', '-n', container, 'link', 'set', 'eth0', 'up'])
  sh(['ip', '-n', container, 'route', 'add', 'default', 'via', GATEWAY])
}

function stateDir (t: TeardownHost): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bridge-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function startWorld (t: TeardownHost, ns: string, dir: string): Promise<NsNode<BridgeWorld>> {
  const w = await nsNode<BridgeWorld>(t, ns, { module: 'test/fixtures/bridge-world.mjs', factory: 'bridgeWorld' })
  await w.call('open', [dir])
  return w
}

interface Scene {
  host: string
  c1: string
  c2: string
  dir: string
  w: NsNode<BridgeWorld>
  poolId: string
  ip1: string
  ip2: string
}

/** A host namespace running the driver, a network with MTU 1400 and two endpoints, their ends not yet plugged. */
async function scene (t: TeardownHost): Promise<Scene> {
  const host = netns(t, 'fyb')
  const c1 = netns(t, 'fyc')
  const c2 = netns(t, 'fyc')
  const dir = stateDir(t)
  const w = await startWorld(t, host, dir)
  const pool = await w.call('requestPool', [{ addressSpace: 'FerryLocal', pool: SUBNET, subPool: '', options: {}, v6: false }])
  const gw = await w.call('requestAddress', [{ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } }])
  await w.call('createNetwork', [{ id: NET, subnet: SUBNET, gatewayCidr: gw.address, generic: { 'com.docker.network.driver.mtu': String(MTU) }, internal: false, ipv6: false, extraIpv4Data: 0 }])
  const a1 = await w.call('requestAddress', [{ poolId: pool.poolId, address: '', options: {} }])
  const a2 = await w.call('requestAddress', [{ poolId: pool.poolId, address: '', options: {} }])
  await w.call('createEndpoint', [{ networkId: NET, endpointId: EP1, addressCidr: a1.address, mac: '', portRequests: [], exposed: [] }])
  await w.call('createEndpoint', [{ networkId: NET, endpointId: EP2, addressCidr: a2.address, mac: '', portRequests: [], exposed: [] }])
  return { host, c1, c2, dir, w, poolId: pool.poolId, ip1: a1.address, ip2: a2.address }
}

function plugBoth (s: Scene): void {
  plugContainer(s.host, s.c1, V1.container, s.ip1)
  plugContainer(s.host, s.c2, V2.container, s.ip2)
}

/** The bridge as the network wants it: address, MTU, up, both host ends enslaved, up, hairpin on. */
function checkBridge (t: Test, s: Scene, what: string): void {
  const br = linkOf(s.host, BRIDGE)
  t.match(br, { linkinfo: { info_kind: 'bridge' }, mtu: MTU }, `${what}: bridge ${BRIDGE} with MTU ${MTU}`)
  t.ok(br?.flags.includes('UP'), `${what}: bridge up`)
  t.same(inet(s.host, BRIDGE), [`${GATEWAY}/24`], `${what}: the gateway address, once`)
  for (const v of [V1, V2]) {
    const l = linkOf(s.host, v.host)
    t.match(l, { linkinfo: { info_kind: 'veth' }, master: BRIDGE, mtu: MTU }, `${what}: ${v.host} on the bridge`)
    t.ok(l?.flags.includes('UP'), `${what}: ${v.host} up`)
    t.match(ports(s.host).find((p) => p.ifname === v.host), { master: BRIDGE, hairpin: true }, `${what}: ${v.host} hairpin on`)
  }
}

function checkTraffic (t: Test, s: Scene, what: string): void {
  const [ip1, ip2] = [s.ip1.split('/')[0] ?? '', s.ip2.split('/')[0] ?? '']
  t.ok(pings(s.c1, ip2), `${what}: c1 -> c2`)
  t.ok(pings(s.c2, ip1), `${what}: c2 -> c1`)
  t.ok(pings(s.c1, GATEWAY), `${what}: c1 -> gateway`)
  t.ok(pings(s.c2, GATEWAY), `${what}: c2 -> gateway`)
}

if (!existsSync(`${REPO_ROOT}dist/driver/network.js`)) {
  t.fail('dist/driver/network.js is missing: run `npx tsc -p .` (npm test builds first)')
}

t.test('a network and two endpoints: bridge, ports, MACs, traffic, teardown to clean', async (t) => {
  const s = await scene(t)
  t.same(ferryLinks(s.host), [BRIDGE, V1.container, V2.container, V1.host, V2.host].sort(), 'one bridge and two veth pairs')
  checkBridge(t, s, 'created')
  t.equal(s.ip1, '10.77.0.2/24')
  t.equal(s.ip2, '10.77.0.3/24')
  t.equal(linkOf(s.host, V1.container)?.address, macForIp('10.77.0.2'), 'container end 1 has the MAC derived from its address')
  t.equal(linkOf(s.host, V2.container)?.address, macForIp('10.77.0.3'), 'container end 2 too')
  t.equal(linkOf(s.host, V1.container)?.mtu, MTU, 'container end MTU')
  t.same(await s.w.call('firewallCalls'), [`addNetwork ${BRIDGE}`], 'the firewall was told of the network')

  plugBoth(s)
  t.equal(linkOf(s.c1, 'eth0')?.address, '02:42:0a:4d:00:02', 'the MAC went into the container with the link')
  checkTraffic(t, s, 'plugged')

  await s.w.call('deleteEndpoint', [NET, EP1])
  await s.w.call('deleteEndpoint', [NET, EP2])
  await s.w.call('deleteNetwork', [NET])
  t.same(links(s.host).map((l) => l.ifname), ['lo'], 'host namespace: only lo is left')
  t.same(ipJson<IpAddr[]>(s.host, ['addr', 'show']).map((a) => a.ifname), ['lo'], 'no address but loopback')
  t.same(links(s.c1).map((l) => l.ifname), ['lo'], 'the container end went with its pair')
  t.same(ports(s.host), [], 'no bridge ports')
  for (const ip of [s.ip1, s.ip2, `${GATEWAY}/24`]) await s.w.call('releaseAddress', [s.poolId, ip])
  await s.w.call('releasePool', [s.poolId])
  const st = await s.w.call('state')
  t.same([st.networks, st.endpoints, st.pools], [{}, {}, {}], 'the store is empty')
})

t.test('kill -9 of the agent, restart over the same state, reconcile', async (t) => {
  const s = await scene(t)
  plugBoth(s)
  checkTraffic(t, s, 'before the kill')
  const before = new Map(links(s.host).map((l) => [l.ifname, l.ifindex]))

  // The agent dies in the middle of creating a third endpoint (the call is in flight).
  const EP3 = 'e3'.repeat(32)
  const a3 = await s.w.call('requestAddress', [{ poolId: s.poolId, address: '', options: {} }])
  const inFlight = s.w.call('createEndpoint', [{ networkId: NET, endpointId: EP3, addressCidr: a3.address, mac: '', portRequests: [], exposed: [] }]).then(() => 'done', () => 'killed')
  process.kill(s.w.pid ?? 0, 'SIGKILL')
  t.comment(`in-flight createEndpoint: ${await inFlight}`)
  await s.w.close()
  // And leftovers of creates it never recorded: a veth pair and a bridge with ferry's names.
  sh(['ip', '-n', s.host, 'link', 'add', 'fyhdeadbeef0001', 'type', 'veth', 'peer', 'name', 'fycdeadbeef0001'])
  sh(['ip', '-n', s.host, 'link', 'add', 'fy-cafecafecafe', 'type', 'bridge'])

  const w = await startWorld(t, s.host, s.dir)
  const st = await w.call('state')
  t.same(Object.keys(st.networks), [NET], 'the network survived the kill')
  t.ok(st.endpoints[EP1] !== undefined && st.endpoints[EP2] !== undefined, 'both plugged endpoints survived')
  const has3 = st.endpoints[EP3] !== undefined
  t.comment(`endpoint 3 ${has3 ? 'was' : 'was not'} committed before the kill`)

  const r = await w.call('reconcile')
  t.ok(r.links >= 2, `reconcile repaired ${r.links} links (at least the two leftovers)`)
  const wanted = [BRIDGE, V1.host, V2.host, ...(has3 ? [vethNames(EP3).host, vethNames(EP3).container] : [])].sort()
  t.same(ferryLinks(s.host), wanted, 'exactly the links the store holds: leftovers gone, nothing duplicated')
  for (const name of [BRIDGE, V1.host, V2.host]) t.equal(linkOf(s.host, name)?.ifindex, before.get(name), `${name} kept, not recreated`)
  checkBridge(t, { ...s, w }, 'after restart')
  if (has3) t.match(ports(s.host).find((p) => p.ifname === vethNames(EP3).host), { master: BRIDGE, hairpin: true }, 'endpoint 3 on the bridge too')
  t.equal((await w.call('reconcile')).links, 0, 'a second reconcile has nothing to do')

  const a4 = await w.call('requestAddress', [{ poolId: s.poolId, address: '', options: {} }])
  t.notOk([s.ip1, s.ip2, a3.address, `${GATEWAY}/24`].includes(a4.address), `the next address (${a4.address}) is a new one: allocations were not lost`)
  checkTraffic(t, { ...s, w }, 'after restart')
})

t.test('a bridge deleted by hand comes back at reconcile', async (t) => {
  const s = await scene(t)
  plugBoth(s)
  sh(['ip', '-n', s.host, 'link', 'del', BRIDGE])
  t.equal(linkOf(s.host, BRIDGE), undefined, 'bridge gone')
  t.equal(linkOf(s.host, V1.host)?.master, undefined, 'its ports released')
  t.notOk(pings(s.c1, s.ip2.split('/')[0] ?? '', 1), 'no traffic without the bridge')
  // That ping left c1's ARP entry for c2 mid-resolution; a packet queued on it now
  // would be dropped when its last probe times out, whatever the bridge does.
  sh(['ip', '-n', s.c1, 'neigh', 'flush', 'all'])

  const r = await s.w.call('reconcile')
  t.ok(r.links > 0, `reconcile repaired ${r.links} links`)
  checkBridge(t, s, 'after reconcile')
  t.same(ferryLinks(s.host), [BRIDGE, V1.host, V2.host].sort(), 'nothing else created')
  t.equal((await s.w.call('reconcile')).links, 0, 'a second reconcile has nothing to do')
  checkTraffic(t, s, 'after reconcile')
})

t.test('endpoint ids sharing their first 12 characters: two veth pairs; an unknown id deletes nothing', async (t) => {
  const host = netns(t, 'fyb')
  const c1 = netns(t, 'fyc')
  const w = await startWorld(t, host, stateDir(t))
  const pool = await w.call('requestPool', [{ addressSpace: 'FerryLocal', pool: SUBNET, subPool: '', options: {}, v6: false }])
  const gw = await w.call('requestAddress', [{ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } }])
  await w.call('createNetwork', [{ id: NET, subnet: SUBNET, gatewayCidr: gw.address, generic: {}, internal: false, ipv6: false, extraIpv4Data: 0 }])
  const A = 'ab'.repeat(6) + '0'.repeat(52)
  const B = 'ab'.repeat(6) + '1'.repeat(52)
  const a = await w.call('requestAddress', [{ poolId: pool.poolId, address: '', options: {} }])
  const b = await w.call('requestAddress', [{ poolId: pool.poolId, address: '', options: {} }])
  await w.call('createEndpoint', [{ networkId: NET, endpointId: A, addressCidr: a.address, mac: '', portRequests: [], exposed: [] }])
  await w.call('createEndpoint', [{ networkId: NET, endpointId: B, addressCidr: b.address, mac: '', portRequests: [], exposed: [] }])
  const st = await w.call('state')
  const ea = st.endpoints[A]!
  const eb = st.endpoints[B]!
  t.same(ferryLinks(host), [BRIDGE, ea.hostVeth, ea.containerVeth, eb.hostVeth, eb.containerVeth].sort(), 'two distinct veth pairs, as recorded')
  for (const name of [ea.hostVeth, eb.hostVeth]) t.match(linkOf(host, name), { master: BRIDGE }, `${name} on the bridge`)

  await w.call('deleteEndpoint', [NET, 'ab'.repeat(6) + '2'.repeat(52)])
  t.equal(ferryLinks(host).length, 5, 'an unknown id sharing the prefix deleted nothing')
  await w.call('deleteEndpoint', [NET, B])
  t.same(ferryLinks(host), [BRIDGE, ea.hostVeth, ea.containerVeth].sort(), 'B gone, A intact')
  plugContainer(host, c1, ea.containerVeth, a.address)
  t.ok(pings(c1, GATEWAY), 'A still reaches its gateway')
})
