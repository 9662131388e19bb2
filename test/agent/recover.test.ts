/**
 * Rebuilding after a store loss (src/agent/recover.ts): the case, where the
 * journal lost the line of the last container's endpoint. Its record comes back
 * from the engine and the kernel, its veth is no longer "unneeded", and no address
 * that the kernel or the engine shows in use can be handed out again.
 */
import t from 'tap'
import { fakeWorld, silentLog } from '../harness/fakes.js'
import { LossRecovery, planRecovery, type RecoveryFacts } from '../../src/agent/recover.js'
import type { EngineNames } from '../../src/docker/client.js'
import { networkRecord, poolRecord, endpointRecord } from '../fixtures/records.js'

const NET = 'aa'.repeat(32)
const EPS = ['b1', 'b2', 'b3'].map((p) => p.repeat(32))

function engineWith (eps: Array<[string, string]>, extra: string[] = []): EngineNames {
  return {
    networks: new Map([[NET, 'front']]),
    endpoints: new Map(eps.map(([id, cidr]) => [id, { containerId: `c-${id.slice(0, 4)}`, containerName: `/web-${id.slice(0, 2)}`, networkId: NET, cidr }])),
    addresses: new Map([[NET, new Set([...eps.map(([, c]) => c.split('/')[0]!), ...extra])]]),
  }
}

t.test('an endpoint the store lost comes back from the engine; addresses in use are never handed out again', async (t) => {
  const w = fakeWorld()
  const pool = await w.ipam.requestPool({ addressSpace: 'FerryLocal', pool: '10.50.0.0/24', subPool: '', options: {}, v6: false })
  await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  await w.driver.createNetwork({ id: NET, subnet: '10.50.0.0/24', gatewayCidr: '10.50.0.1/24', generic: {}, internal: false, ipv6: false, extraIpv4Data: 0 })
  const cidrs: Array<[string, string]> = []
  for (const id of EPS) {
    const { address } = await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: null })
    await w.driver.createEndpoint({ networkId: NET, endpointId: id, addressCidr: address, mac: '', portRequests: [], exposed: [] })
    await w.driver.join(NET, id, '/sandbox')
    cidrs.push([id, address])
  }
  // The damaged journal line held the last endpoint and its address.
  const lost = w.store.state.endpoints[EPS[2]!]!
  delete w.store.state.endpoints[EPS[2]!]
  delete w.store.state.pools[pool.poolId]!.allocated[lost.address]
  // A `ferry run` container the store lost too: only the kernel's neighbour table knows it.
  await w.links.addNeigh({ dev: 'fy-aaaaaaaaaaaa', ip: '10.50.0.9', mac: '02:42:0a:32:00:09' })

  const r = new LossRecovery({ store: w.store, driver: w.driver, ipam: w.ipam, links: w.links, engine: async () => engineWith(cidrs, ['10.50.0.20']), log: silentLog, now: () => new Date('2026-12-06T00:00:00Z') })
  await r.run()
  const { sandboxKey: _, ...rest } = lost
  t.same(w.store.state.endpoints[EPS[2]!], { ...rest, joined: true, createdAt: '2026-12-06T00:00:00.000Z' }, 'the record is rebuilt (all but the sandbox, which the engine keeps)')
  const allocated = w.store.state.pools[pool.poolId]!.allocated
  t.same(Object.entries(allocated).map(([ip, u]) => `${ip} ${u.kind}`).sort(),
    ['10.50.0.1 gateway', '10.50.0.2 endpoint', '10.50.0.20 recovered', '10.50.0.3 endpoint', '10.50.0.4 endpoint', '10.50.0.9 recovered'])

  // Reconcile no longer sees the veth as unneeded, even outside loss mode.
  await w.driver.reconcile()
  t.ok((await w.links.listLinks()).some((l) => l.name === lost.hostVeth), 'the container keeps its veth')
  // New addresses skip every address in use.
  const handed = new Set<string>()
  for (let i = 0; i < 30; i++) handed.add((await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: null })).address.split('/')[0]!)
  for (const used of ['10.50.0.2', '10.50.0.3', '10.50.0.4', '10.50.0.9', '10.50.0.20']) t.notOk(handed.has(used), `${used} is not handed out again`)
})

t.test('without the engine the kernel\'s part is done, and the engine\'s is tried again', async (t) => {
  const w = fakeWorld()
  const pool = await w.ipam.requestPool({ addressSpace: 'FerryLocal', pool: '10.50.0.0/24', subPool: '', options: {}, v6: false })
  await w.ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } })
  await w.driver.createNetwork({ id: NET, subnet: '10.50.0.0/24', gatewayCidr: '10.50.0.1/24', generic: {}, internal: false, ipv6: false, extraIpv4Data: 0 })
  await w.links.addNeigh({ dev: 'fy-aaaaaaaaaaaa', ip: '10.50.0.7', mac: '02:42:0a:32:00:07' })
  let engine: EngineNames | undefined
  let asked = 0
  const r = new LossRecovery({ store: w.store, driver: w.driver, ipam: w.ipam, links: w.links, engine: async () => { asked++; return engine }, log: silentLog })
  await r.run()
  t.same(Object.keys(w.store.state.pools[pool.poolId]!.allocated), ['10.50.0.1', '10.50.0.7'])
  engine = engineWith([])
  await r.run()
  await r.run()
  t.equal(asked, 2, 'once the engine answered, recovery is done')
})

t.test('a container of ferry run or attach whose endpoint record was lost gets it back from its own record', async (t) => {
  const net = networkRecord(NET, { subnet: '10.0.0.0/24', gateway: '10.0.0.1', bridge: 'fy-aaaaaaaaaaaa', poolId: 'p' })
  const id = 'e5'.repeat(32)
  const plan = planRecovery({
    networks: [net], endpoints: [], pool: () => poolRecord('p'), engine: undefined, neighbours: [], now: 'now',
    containers: [{ name: 'c5', endpointId: id, networkId: NET, address: '10.0.0.6', prefixLen: 24, mac: '02:42:0a:00:00:06' } as never],
    links: [{ name: `fyh${id.slice(0, 12)}` } as never],
  })
  t.match(plan.endpoints, [{ id, networkId: NET, address: '10.0.0.6', prefixLen: 24, mac: '02:42:0a:00:00:06', hostVeth: `fyh${id.slice(0, 12)}`, joined: true, ports: [] }])
  t.same(plan.reserve.map((r) => `${r.ip} ${r.kind} ${r.why}`), [`10.0.0.6 endpoint endpoint e5e5e5e5e5e5 (rebuilt from container c5) holds it`])
})

t.test('the plan: what is rebuilt, reserved and skipped', async (t) => {
  const net = networkRecord(NET, { subnet: '10.0.0.0/24', gateway: '10.0.0.1', bridge: 'fy-aaaaaaaaaaaa' })
  const pool = poolRecord('p', { allocated: { '10.0.0.1': { kind: 'gateway', at: 'x' } } })
  const [a, b, c, d] = ['a1', 'a2', 'a3', 'a4'].map((p) => p.repeat(32)) as [string, string, string, string]
  const facts: RecoveryFacts = {
    networks: [net],
    endpoints: [endpointRecord(a, { networkId: NET, address: '10.0.0.5' })],
    containers: [],
    pool: (id) => (id === 'p' ? pool : undefined),
    engine: {
      networks: new Map(),
      endpoints: new Map([
        [a, { containerId: 'x', containerName: '/a', networkId: NET, cidr: '10.0.0.5/24' }], // in the store already
        [b, { containerId: 'x', containerName: '/b', networkId: NET, cidr: '10.0.0.5/24' }], // another's address
        [c, { containerId: 'x', containerName: '/c', networkId: NET, cidr: '192.168.1.2/24' }], // not of the subnet
        [d, { containerId: 'x', containerName: '/d', networkId: NET, cidr: '10.0.0.8/24', mac: 'bad' }], // veth gone
      ]),
      addresses: new Map([[NET, new Set(['10.0.0.1', 'nonsense'])]]),
    },
    links: [],
    neighbours: [{ dev: 'fy-aaaaaaaaaaaa', ip: '10.0.0.200', mac: 'x' }, { dev: 'eth0', ip: '10.0.0.201', mac: 'x' }, { dev: 'fy-aaaaaaaaaaaa', ip: '10.9.9.9', mac: 'x' }],
    now: 'now',
  }
  const plan = planRecovery(facts)
  t.same(plan.endpoints, [])
  t.same(plan.reserve.map((r) => `${r.ip} ${r.kind}`), ['10.0.0.5 endpoint', '10.0.0.8 recovered', '10.0.0.200 recovered'])
  t.same(plan.skipped.map((s) => s.replace(/^\w+: /, '')), [
    "its address 10.0.0.5 is endpoint a1a1a1a1a1a1's in the store", 'the engine gives no address of 10.0.0.0/24 for it', 'its veth fyha4a4a4a4a4a4 is gone',
  ])
})

t.test('dual-stack: IPv6 addresses come back with their endpoints and are reserved in the IPv6 pool', async (t) => {
  const net = networkRecord(NET, { subnet: '10.0.0.0/24', gateway: '10.0.0.1', bridge: 'fy-aaaaaaaaaaaa', poolId: 'p', subnet6: 'fd00:9::/64', gateway6: 'fd00:9::1', poolId6: 'p6' })
  const pools: Record<string, ReturnType<typeof poolRecord>> = { p: poolRecord('p'), p6: poolRecord('p6', { subnet: 'fd00:9::/64' }) }
  const [a, b, c, d] = ['d1', 'd2', 'd3', 'd4'].map((p) => p.repeat(32)) as [string, string, string, string]
  const plan = planRecovery({
    networks: [net], pool: (id) => pools[id], now: 'now',
    endpoints: [endpointRecord(a, { networkId: NET, address: '10.0.0.5', address6: 'fd00:9::5' })],
    containers: [{ name: 'r', endpointId: c, networkId: NET, address: '10.0.0.7', prefixLen: 24, address6: 'fd00:9::7', prefixLen6: 64 } as never],
    engine: {
      networks: new Map(),
      endpoints: new Map([
        [b, { containerId: 'x', containerName: '/b', networkId: NET, cidr: '10.0.0.6/24', cidr6: 'fd00:9::6/64' }],
        [d, { containerId: 'x', containerName: '/d', networkId: NET, cidr: '10.0.0.8/24', cidr6: 'fd00:9::5/64' }], // a's IPv6 address
      ]),
      addresses: new Map([[NET, new Set(['fd00:9::20', 'fd00:9::1', 'fd00:77::1'])]]),
    },
    links: [b, c, d].map((id) => ({ name: `fyh${id.slice(0, 12)}` }) as never),
    neighbours: [{ dev: 'fy-aaaaaaaaaaaa', ip: 'fd00:9::30', mac: 'x' }],
  })
  t.match(plan.endpoints.find((e) => e.id === b), { address: '10.0.0.6', address6: 'fd00:9::6', prefixLen6: 64 }, 'from the engine: both families')
  t.match(plan.endpoints.find((e) => e.id === c), { address: '10.0.0.7', address6: 'fd00:9::7', prefixLen6: 64 }, 'from a container record: both families')
  const fromD = plan.endpoints.find((e) => e.id === d)!
  t.equal(fromD.address, '10.0.0.8')
  t.equal(fromD.address6, undefined, "an IPv6 address another endpoint holds is not given to this one")
  t.same(plan.reserve.filter((r) => r.poolId === 'p6').map((r) => `${r.ip} ${r.kind}`), [
    'fd00:9::5 endpoint', 'fd00:9::6 endpoint', 'fd00:9::7 endpoint', 'fd00:9::20 recovered', 'fd00:9::30 recovered',
  ], 'every IPv6 address in use is reserved in the IPv6 pool; the gateway and addresses of other subnets are not')
  t.same(plan.reserve.filter((r) => r.poolId === 'p').map((r) => r.ip), ['10.0.0.5', '10.0.0.6', '10.0.0.8', '10.0.0.7'])
})
