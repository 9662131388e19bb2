import t from 'tap'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { GATEWAY_ADDRESS_TYPE, Ipam, REQUEST_ADDRESS_TYPE } from '../../src/ipam/ipam.js'
import { FileStore } from '../../src/store/store.js'

const GW = { [REQUEST_ADDRESS_TYPE]: GATEWAY_ADDRESS_TYPE }

function clock (start: number): () => Date {
  let n = start
  return () => new Date(Date.UTC(2024, 0, 1) + 1000 * n++)
}

async function open (dir: string, tick: number): Promise<{ ipam: Ipam, store: FileStore }> {
  const store = await FileStore.open(dir)
  return { store, ipam: new Ipam({ store, now: clock(tick), hostNetworks: async () => [] }) }
}

t.test('a new Ipam over the same state file continues seamlessly', async (t) => {
  const dir = t.testdir()
  const req = (p: string, sub = '') => ({ addressSpace: 'FerryLocal', pool: p, subPool: sub, options: {}, v6: false })

  const first = await open(dir, 0)
  const n1 = await first.ipam.requestPool(req('10.123.0.0/24'))
  const auto = await first.ipam.requestPool(req(''))
  await first.ipam.requestAddress({ poolId: n1.poolId, address: '', options: GW })
  for (let i = 0; i < 5; i++) await first.ipam.requestAddress({ poolId: n1.poolId, address: '', options: null })
  await first.ipam.requestAddress({ poolId: n1.poolId, address: '10.123.0.50', options: null })
  await first.ipam.releaseAddress(n1.poolId, '10.123.0.3')
  // Snapshot plus journal, as the next agent would read them.
  const onDisk = (await FileStore.open(dir)).state
  t.same(Object.keys(onDisk.pools).sort(), [auto.poolId, n1.poolId].sort(), 'pools are on disk when the calls resolve')

  // "Restart": a fresh store and Ipam over the same directory.
  const second = await open(dir, 100)
  t.same(second.ipam.pools().map((p) => p.subnet).sort(), ['10.123.0.0/24', '172.17.0.0/16'])
  t.same(Object.keys(second.ipam.pool(n1.poolId)?.allocated ?? {}).sort(),
    ['10.123.0.1', '10.123.0.2', '10.123.0.4', '10.123.0.5', '10.123.0.50', '10.123.0.6'])
  t.equal((await second.ipam.requestAddress({ poolId: n1.poolId, address: '', options: null })).address, '10.123.0.7/24',
    'serial allocation resumes after the last address handed out (the released .3 is not reused)')
  t.equal((await second.ipam.requestPool(req(''))).pool, '172.18.0.0/16', 'auto pools skip the persisted ones')
  t.equal((await (async () => { try { await second.ipam.requestPool(req('10.123.0.0/25')) } catch (e) { return (e as Error).message } })()),
    '10.123.0.0/25 overlaps pool 10.123.0.0/24 already used by ferry')

  // Replay after the restart: the engine asks again for what it had.
  second.ipam.beginReplay()
  t.same(await second.ipam.requestPool(req('10.123.0.0/24')), { ...n1, data: {} })
  t.equal((await second.ipam.requestAddress({ poolId: n1.poolId, address: '10.123.0.50', options: null })).address, '10.123.0.50/24')
  second.ipam.endReplay()

  t.ok(await second.ipam.releasePool(auto.poolId))
  const third = await open(dir, 200)
  t.equal(third.ipam.pool(auto.poolId), undefined, 'the release is durable')
  t.equal(third.ipam.pools().length, 2)

  // Throughput with real fsyncs: 200 concurrent requests are serialized, each one durable.
  const t0 = performance.now()
  const addrs = await Promise.all(Array.from({ length: 200 }, async () =>
    (await third.ipam.requestAddress({ poolId: n1.poolId, address: '', options: null })).address))
  t.comment(`200 concurrent durable allocations: ${(performance.now() - t0).toFixed(0)} ms, ${third.store.writes} writes`)
  t.equal(new Set(addrs).size, 200)
  const fourth = await open(dir, 300)
  t.equal(Object.keys(fourth.ipam.pool(n1.poolId)?.allocated ?? {}).length, 207)
})
