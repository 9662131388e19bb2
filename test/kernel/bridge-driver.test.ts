/**
 * The bridge driver (src/bridge/driver.ts) on a real kernel, in a fresh namespace per family:
 * what a request makes (ensureNetwork, addEndpoint) is what its reconcile plans, so a
 * reconcile right after finds nothing to do; a bridge deleted by hand comes back with its
 * port; a failed add leaves no link; removal returns the namespace to clean. Checked against
 * `ip -j`, `bridge -j` and /proc/sys in the namespace.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { ipJson, netns, nsExec, sh } from '../harness/netns.js'
import { REPO_ROOT, nsNode } from '../harness/nsnode.js'
import type { BridgeDriver } from '../../src/bridge/driver.js'
import type { EndpointRecord, NetworkRecord } from '../../src/model/types.js'
import { endpointRecord, networkRecord } from '../fixtures/records.js'

interface Fixture {
  ensureNetwork: BridgeDriver['ensureNetwork']
  removeNetwork: BridgeDriver['removeNetwork']
  addEndpoint: (ep: EndpointRecord, net: NetworkRecord) => Promise<void>
  upEndpoint: BridgeDriver['upEndpoint']
  removeEndpoint: BridgeDriver['removeEndpoint']
  reconcile: (nets: NetworkRecord[], eps: EndpointRecord[]) => ReturnType<BridgeDriver['reconcile']>
  addEndpointOrUndo: (ep: EndpointRecord, net: NetworkRecord) => Promise<string>
}

interface IpLink { ifname: string, mtu: number, address: string, flags: string[], master?: string, linkinfo?: { info_kind?: string } }
interface IpAddr { ifname: string, addr_info: Array<{ family: string, local: string, prefixlen: number, scope: string }> }
interface BridgePort { ifname: string, master?: string, hairpin?: boolean }

const V4 = networkRecord('d1'.repeat(32), { subnet: '10.78.0.0/24', gateway: '10.78.0.1', mtu: 1400 })
const DUAL: NetworkRecord = { ...V4, subnet6: 'fd00:78::/64', gateway6: 'fd00:78::1', poolId6: 'p6', gatewayMode6: 'nat' }
const EP = endpointRecord('e7'.repeat(32), { networkId: V4.id, address: '10.78.0.2', mac: '02:42:0a:4e:00:02' })

const links = (ns: string): IpLink[] => ipJson<IpLink[]>(ns, ['-d', 'link', 'show'])
const linkOf = (ns: string, name: string): IpLink | undefined => links(ns).find((l) => l.ifname === name)
const globalAddrs = (ns: string, dev: string): string[] =>
  ipJson<IpAddr[]>(ns, ['addr', 'show', 'dev', dev]).flatMap((a) => a.addr_info.filter((i) => i.scope === 'global').map((i) => `${i.local}/${i.prefixlen}`))
const portOf = (ns: string, name: string): BridgePort | undefined =>
  (JSON.parse(sh(['bridge', '-n', ns, '-d', '-j', 'link', 'show']) || '[]') as BridgePort[]).find((p) => p.ifname === name)
const conf6 = (ns: string, dev: string, key: string): string => nsExec(ns, ['cat', `/proc/sys/net/ipv6/conf/${dev}/${key}`]).trim()

if (!existsSync(`${REPO_ROOT}dist/bridge/driver.js`)) {
  t.fail('dist/bridge/driver.js is missing: run `npx tsc -p .` (npm test builds first)')
}

for (const [family, net] of [['IPv4', V4], ['dual-stack', DUAL]] as const) {
  t.test(`${family}: a request's bridge and port are what the reconcile wants; a lost bridge comes back; removal leaves the namespace clean`, async (t) => {
    const ns = netns(t, 'fybd')
    const d = await nsNode<Fixture>(t, ns, { module: 'test/fixtures/bridge-driver.mjs', factory: 'bridgeDriver' })
    await d.call('ensureNetwork', [net])
    await d.call('addEndpoint', [EP, net])
    const check = (what: string): void => {
      const br = linkOf(ns, net.bridge)
      t.match(br, { linkinfo: { info_kind: 'bridge' }, mtu: 1400, address: '02:42:0a:4e:00:01' }, `${what}: the bridge, its MTU and fixed MAC`)
      t.ok(br?.flags.includes('UP'), `${what}: bridge up`)
      t.same(globalAddrs(ns, net.bridge), net.subnet6 === undefined ? ['10.78.0.1/24'] : ['10.78.0.1/24', 'fd00:78::1/64'], `${what}: its gateways`)
      t.match(linkOf(ns, EP.hostVeth), { linkinfo: { info_kind: 'veth' }, master: net.bridge, mtu: 1400 }, `${what}: the host end on the bridge`)
      t.ok(linkOf(ns, EP.hostVeth)?.flags.includes('UP'), `${what}: host end up`)
      t.match(portOf(ns, EP.hostVeth), { master: net.bridge, hairpin: true }, `${what}: hairpin on`)
      t.equal(linkOf(ns, EP.containerVeth)?.address, EP.mac, `${what}: the container end has the endpoint's MAC`)
      if (net.subnet6 !== undefined) {
        t.same(['disable_ipv6', 'accept_ra', 'autoconf'].map((k) => conf6(ns, net.bridge, k)), ['0', '0', '0'], `${what}: the bridge's IPv6 settings`)
        t.equal(conf6(ns, EP.hostVeth, 'disable_ipv6'), '1', `${what}: the port takes no IPv6 address`)
      }
    }
    check('after the requests')
    t.same(await d.call('reconcile', [[net], [EP]]), [], 'a reconcile right after finds nothing to do')
    sh(['ip', '-n', ns, 'link', 'del', net.bridge])
    t.same((await d.call('reconcile', [[net], [EP]])).map((o) => o.op).filter((op) => op === 'createBridge' || op === 'setMaster'), ['createBridge', 'setMaster'])
    check('after the bridge was deleted by hand and reconciled')
    t.same(await d.call('reconcile', [[net], [EP]]), [], 'and nothing more to do')
    await d.call('removeEndpoint', [EP])
    await d.call('removeNetwork', [net])
    t.same(links(ns).map((l) => l.ifname), ['lo'], 'only lo is left')
  })
}

t.test('an add that fails half-way leaves no link behind', async (t) => {
  const ns = netns(t, 'fybd')
  const d = await nsNode<Fixture>(t, ns, { module: 'test/fixtures/bridge-driver.mjs', factory: 'bridgeDriver' })
  // No bridge: the pair is made, then enslaving it fails, and the pair goes again.
  t.match(await d.call('addEndpointOrUndo', [EP, V4]), /fy-d1d1d1d1d1d1/)
  t.same(links(ns).map((l) => l.ifname), ['lo'])
  t.equal(await d.call('upEndpoint', [EP]), false, 'no host end to bring up')
})
