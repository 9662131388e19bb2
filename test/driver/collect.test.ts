/** Orphaned endpoints and leaked addresses (src/driver/collect.ts) over a recording fake driver and IPAM, with a fake clock. */
import t from 'tap'
import { Collector, leakedAddresses, type CollectorDeps } from '../../src/driver/collect.js'
import type { EngineNames } from '../../src/docker/client.js'
import type { EndpointRecord, NetworkRecord, PoolRecord } from '../../src/model/types.js'
import { silentLog } from '../harness/fakes.js'

const NET = 'n'.repeat(64)
const OV = 'o'.repeat(64)
const net = { id: NET, poolId: 'P4', poolId6: 'P6', gateway: '10.1.0.1', subnet: '10.1.0.0/24' } as NetworkRecord
const ov = { id: OV, poolId: 'PO', gateway: '10.9.0.1', subnet: '10.9.0.0/24', overlay: { name: 'ov', vni: 4097 } } as NetworkRecord
const ep = (id: string, networkId: string, address: string, address6?: string) =>
  ({ id, networkId, address, ...(address6 === undefined ? {} : { address6 }) }) as EndpointRecord
const pool = (id: string, ips: string[]): PoolRecord =>
  ({ id, allocated: Object.fromEntries(ips.map((ip) => [ip, { kind: 'endpoint' }])) }) as unknown as PoolRecord

function world (endpoints: EndpointRecord[], pools: PoolRecord[], overlayHeld: string[] = []) {
  const calls: string[] = []
  let now = 1000
  let engine: EngineNames | undefined = { networks: new Map([[NET, 'front'], [OV, 'over']]), endpoints: new Map(), addresses: new Map([[NET, new Set()], [OV, new Set()]]) }
  const owners = new Map<string, string>()
  const deps: CollectorDeps = {
    driver: {
      networks: () => [net, ov],
      endpoints: (id?: string) => endpoints.filter((e) => id === undefined || e.networkId === id),
      network: (id: string) => [net, ov].find((n) => n.id === id)!,
      deleteEndpoint: async (n: string, id: string) => { calls.push(`delete ${id}`); endpoints.splice(endpoints.findIndex((e) => e.id === id), 1) },
      releaseOverlayAddress: async (o: string, ip: string) => { calls.push(`release ${o} ${ip}`) },
    },
    ipam: {
      pool: (id: string) => pools.find((p) => p.id === id),
      releaseAddress: async (id: string, ip: string) => { calls.push(`release ${id} ${ip}`); return true },
    },
    engineNames: async () => engine,
    endpointOwner: (id) => owners.get(id),
    heldAddresses: (o) => (o === 'ov' ? overlayHeld : undefined),
    graceMs: 60_000,
    log: silentLog,
    now: () => now,
  }
  return {
    collector: new Collector(deps), deps, calls, owners,
    advance: (ms: number) => { now += ms },
    engine: (e: EngineNames | undefined) => { engine = e },
  }
}

t.test('an endpoint the engine does not know is deleted after the grace period, with both its addresses', async (t) => {
  const w = world([ep('e1', NET, '10.1.0.2', 'fd00::2')], [pool('P4', ['10.1.0.2']), pool('P6', ['fd00::2'])])
  await w.collector.collect()
  t.same(w.calls, [], 'seen, not yet due')
  w.advance(59_999)
  await w.collector.collect()
  t.same(w.calls, [], 'one millisecond short')
  w.advance(1)
  await w.collector.collect()
  t.same(w.calls, ['delete e1', 'release P4 10.1.0.2', 'release P6 fd00::2'])
})

t.test('an overlay orphan gives its address back to the cluster', async (t) => {
  const w = world([ep('e2', OV, '10.9.0.5')], [], ['10.9.0.5'])
  await w.collector.collect()
  w.advance(60_000)
  await w.collector.collect()
  t.same(w.calls, ['delete e2', 'release ov 10.9.0.5'])
})

t.test('endpoints the engine knows, of networks it does not know, or owned by ferry\'s runtime are kept', async (t) => {
  const other = { ...net, id: 'x'.repeat(64) }
  const w = world([ep('known', NET, '10.1.0.2'), ep('runtime', NET, '10.1.0.3'), ep('ferrys', other.id, '10.2.0.2')], [pool('P4', ['10.1.0.2', '10.1.0.3'])])
  w.owners.set('runtime', 'web')
  w.engine({
    networks: new Map([[NET, 'front']]),
    endpoints: new Map([['known', { containerId: 'c', containerName: '/c' }]]),
    addresses: new Map([[NET, new Set(['10.1.0.2'])]]),
  })
  await w.collector.collect()
  w.advance(120_000)
  await w.collector.collect()
  t.same(w.calls, [])
  t.equal(w.collector.waiting, 0, 'nothing waits')
})

t.test('nothing is collected while the engine cannot be asked', async (t) => {
  const w = world([ep('e1', NET, '10.1.0.2')], [pool('P4', ['10.1.0.2', '10.1.0.7'])])
  await w.collector.collect()
  t.equal(w.collector.waiting, 2, 'the orphan and the leaked address wait')
  w.engine(undefined)
  w.advance(120_000)
  await w.collector.collect()
  t.same(w.calls, [])
})

t.test('a candidate that comes back starts its grace period afresh', async (t) => {
  const w = world([ep('e1', NET, '10.1.0.2')], [pool('P4', ['10.1.0.2'])])
  const names = (known: boolean): EngineNames => ({
    networks: new Map([[NET, 'front']]),
    endpoints: new Map(known ? [['e1', { containerId: 'c', containerName: '/c' }]] : []),
    addresses: new Map([[NET, new Set(known ? ['10.1.0.2'] : [])]]),
  })
  w.engine(names(false))
  await w.collector.collect()
  w.advance(50_000)
  w.engine(names(true))
  await w.collector.collect()
  t.equal(w.collector.waiting, 0, 'forgotten once the engine knows it again')
  w.engine(names(false))
  w.advance(50_000)
  await w.collector.collect()
  w.advance(50_000)
  await w.collector.collect()
  t.same(w.calls, [], '50 s + 50 s of a fresh grace period: not yet')
  w.advance(10_000)
  await w.collector.collect()
  t.same(w.calls, ['delete e1', 'release P4 10.1.0.2'])
})

t.test('leaked addresses: held by no ferry endpoint and no engine endpoint, gateways aside', async (t) => {
  const w = world([ep('e1', NET, '10.1.0.2', 'fd00::2')], [pool('P4', ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4']), pool('P6', ['fd00::2', 'fd00::3'])], ['10.9.0.1', '10.9.0.7'])
  const names: EngineNames = {
    networks: new Map([[NET, 'front'], [OV, 'over']]),
    endpoints: new Map([['e1', { containerId: 'c', containerName: '/c' }]]),
    addresses: new Map([[NET, new Set(['10.1.0.4'])], [OV, new Set()]]),
  }
  t.same(leakedAddresses(w.deps, names).map((l) => [l.id, l.poolId]), [
    [`address ${NET} 10.1.0.3`, undefined],
    [`address ${NET} fd00::3`, 'P6'],
    [`address ${OV} 10.9.0.7`, undefined],
  ])
  w.engine(names)
  await w.collector.collect()
  w.advance(60_000)
  await w.collector.collect()
  t.same(w.calls, ['release P4 10.1.0.3', 'release P6 fd00::3', 'release ov 10.9.0.7'])
})

t.test('networks the engine does not know have no leaked addresses', async (t) => {
  const w = world([], [pool('P4', ['10.1.0.3'])])
  t.same(leakedAddresses(w.deps, { networks: new Map(), endpoints: new Map(), addresses: new Map() }), [])
})
