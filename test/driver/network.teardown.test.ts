/**
 * Teardown is best effort: a step that fails in the middle of DeleteNetwork or DeleteEndpoint
 * does not stop the steps after it, and the error names every failure in one sentence. The
 * kernel fake and the recording firewall (test/harness) inject the failures.
 */
import t from 'tap'
import { fakeWorld, overlayWorld } from '../harness/fakes.js'
import { MemoryStore } from '../../src/store/store.js'
import type { OverlayService } from '../../src/overlay/service.js'

const NET = 'aa'.repeat(32)
const A = 'bb'.repeat(32)
const B = 'cc'.repeat(32)
const PORT = [{ proto: 'tcp' as const, containerPort: 80, containerPortEnd: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }]

/** A network with endpoints A and B; A publishes a port. */
async function twoEndpoints () {
  const w = fakeWorld()
  const pool = await w.ipam.requestPool({ addressSpace: 'FerryLocal', pool: '10.50.0.0/24', subPool: '', options: {}, v6: false })
  const gw = await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  await w.driver.createNetwork({ id: NET, subnet: '10.50.0.0/24', gatewayCidr: gw.address, generic: {}, internal: false, ipv6: false, extraIpv4Data: 0 })
  for (const [id, ip] of [[A, '10.50.0.2'], [B, '10.50.0.3']] as const) {
    await w.ipam.requestAddress({ poolId: pool.poolId, address: ip, options: null })
    await w.driver.createEndpoint({ networkId: NET, endpointId: id, addressCidr: `${ip}/24`, mac: '', portRequests: id === A ? PORT : [], exposed: [] })
  }
  await w.driver.programExternalConnectivity(NET, A, undefined)
  const bridge = w.store.state.networks[NET]!.bridge
  const veths = (id: string): string[] => { const e = w.store.state.endpoints[id]!; return [e.hostVeth, e.containerVeth] }
  return { w, bridge, vethsA: veths(A), vethsB: veths(B) }
}

const linkNames = async (w: ReturnType<typeof fakeWorld>): Promise<string[]> => (await w.links.listLinks()).map((l) => l.name)

t.test('DeleteNetwork goes on past failed steps, reports them all, and a retry finishes', async (t) => {
  const { w, bridge, vethsA, vethsB } = await twoEndpoints()
  w.links.clearCalls()
  // The first step fails (A's firewall rules), then one in the middle (A's host veth).
  w.firewall.failOn(`removeEndpoint ${A.slice(0, 12)}`, new Error('nft: resource busy'))
  w.links.failOn('deleteLink', 1, new Error('EBUSY'))
  await t.rejects(w.driver.deleteNetwork(NET), {
    message: `deleting network ${NET.slice(0, 12)} was incomplete: ` +
      `removing the published ports of endpoint ${A.slice(0, 12)}: nft: resource busy; deleting veth ${vethsA[0]}: EBUSY`,
  })
  t.same(w.links.callsOf('deleteLink').map((c) => c.args[0]), [...vethsA, ...vethsB, bridge], 'every link deletion was tried, in order')
  t.ok(w.firewall.calls.includes(`removeNetwork ${NET.slice(0, 12)}`), 'the network\'s firewall rules went after the failures')
  const left = await linkNames(w)
  t.notOk([...vethsB, bridge].some((n) => left.includes(n)), 'B\'s veth and the bridge are gone')
  t.same(Object.keys(w.store.state.endpoints), [A], 'B is forgotten; A, whose removal failed, is kept')
  t.ok(w.store.state.networks[NET], 'the network is kept: a retry finishes the job')
  t.notOk(w.firewall.calls.includes('teardown'), 'no firewall teardown while the network is kept')

  await w.driver.deleteNetwork(NET)
  t.same(w.store.state.networks, {})
  t.same(w.store.state.endpoints, {})
  t.equal(w.firewall.calls.at(-1), 'teardown', 'the last network gone: the firewall goes too')
  t.same((await linkNames(w)).filter((n) => n.startsWith('fy')), [])
})

t.test('DeleteNetwork with one failure throws that failure, and the steps after it still ran', async (t) => {
  const { w, bridge } = await twoEndpoints()
  w.firewall.failOn(`removeNetwork ${NET.slice(0, 12)}`, new Error('iptables-restore: exit 4'))
  await t.rejects(w.driver.deleteNetwork(NET), { message: `removing the firewall rules of network ${NET.slice(0, 12)}: iptables-restore: exit 4` })
  t.notOk((await linkNames(w)).includes(bridge), 'the bridge went after the firewall failed')
  t.same(w.store.state.endpoints, {}, 'both endpoints are gone')
})

t.test('DeleteEndpoint: a failed firewall removal does not keep the veth or the record', async (t) => {
  const { w, vethsA } = await twoEndpoints()
  w.firewall.failOn(`removeEndpoint ${A.slice(0, 12)}`)
  await t.rejects(w.driver.deleteEndpoint(NET, A), { message: `removing the published ports of endpoint ${A.slice(0, 12)}: injected failure of removeEndpoint ${A.slice(0, 12)}` })
  t.notOk(vethsA.some((n) => w.links.callsOf('deleteLink').every((c) => c.args[0] !== n)), 'both veth deletions were tried')
  t.notOk((await linkNames(w)).some((n) => vethsA.includes(n)), 'the veth is gone')
  t.same(Object.keys(w.store.state.endpoints), [B], 'the record is forgotten (first, as before)')
})

t.test('an overlay network: a failed withdraw does not keep the veth, and the overlay is left', async (t) => {
  const steps: string[] = []
  const overlay: OverlayService = {
    attach: async () => ({ vni: 4096, bridge: 'fyo-ov1', mtu: 1450 }),
    detach: async (name) => { steps.push(`detach ${name}`) },
    allocateAddress: async (_o, preferred) => preferred ?? '10.60.0.5',
    releaseAddress: async () => undefined,
    holdsAddress: () => true,
    publish: async () => undefined,
    withdraw: async (_o, id) => { steps.push(`withdraw ${id.slice(0, 12)}`); throw new Error('redis: connection reset') },
  }
  const { store, links, ipam, driver, poolId, createOverlay } = await overlayWorld(overlay)
  await createOverlay(NET)
  t.equal(ipam.pool(poolId)?.overlay, 'ov1', 'the pool is tied to the overlay')
  await driver.createEndpoint({ networkId: NET, endpointId: A, addressCidr: '10.60.0.5/24', mac: '', portRequests: [], exposed: [] })
  const veth = store.state.endpoints[A]!.hostVeth
  await t.rejects(driver.deleteNetwork(NET), { message: `withdrawing endpoint ${A.slice(0, 12)} from overlay ov1: redis: connection reset` })
  t.same(steps, [`withdraw ${A.slice(0, 12)}`, 'detach ov1'], 'the overlay was left after the failed withdraw')
  t.notOk((await links.listLinks()).some((l) => l.name === veth), 'the veth is gone')
})

/** A memory store whose next commit fails (a full disk). */
class FailingStore extends MemoryStore {
  failNext = false
  override async commit (...changed: Parameters<MemoryStore['commit']>): Promise<void> {
    if (!this.failNext) return super.commit(...changed)
    this.failNext = false
    throw new Error('disk full')
  }
}

t.test('an overlay create whose commit fails unties the pool again, on disk too', async (t) => {
  const overlay: OverlayService = {
    attach: async () => ({ vni: 4096, bridge: 'fyo-ov1', mtu: 1450 }),
    detach: async () => undefined,
    allocateAddress: async () => '10.60.0.5',
    releaseAddress: async () => undefined,
    publish: async () => undefined,
    withdraw: async () => undefined,
  }
  const store = new FailingStore()
  const { ipam, poolId, createOverlay } = await overlayWorld(overlay, store)
  store.touched.length = 0
  store.failNext = true
  await t.rejects(createOverlay(NET), /disk full/)
  t.equal(ipam.pool(poolId)?.overlay, undefined, 'the pool is untied')
  t.same(store.state.networks, {}, 'the network is forgotten')
  t.same(store.touched.map((p) => p.join('/')).sort(), [`networks/${NET}`, `pools/${poolId}/overlay`], 'the undo commits both paths in one write')
})
