import t from 'tap'
import { AgentRecordSource, buildRecords, servicePorts } from '../../src/dns/source.js'
import { RecordSet, type RecordDelta } from '../../src/dns/records.js'
import type { ClusterEndpoint } from '../../src/cluster/types.js'
import type { EndpointRecord, NetworkRecord } from '../../src/model/types.js'
import type { ContainerNames } from '../../src/docker/watch.js'

const NET = { id: 'n'.repeat(64), gateway: '10.30.0.1', overlay: { name: 'ov1', vni: 4096 } } as unknown as NetworkRecord
const EP = { id: 'e'.repeat(64), networkId: NET.id, address: '10.30.0.2' } as unknown as EndpointRecord
const NAMES: ContainerNames = { containerId: 'c1', name: 'local', endpoints: new Map([[EP.id, { networkId: NET.id, aliases: [] }]]), links: [] }

function remote (i: number, host = 'h2', names = [`r${i}`]): ClusterEndpoint {
  return { endpointId: `r${i}`, ip: `10.30.1.${i}`, mac: '02:42:0a:1e:01:00', hostId: host, vtep: '192.168.50.2', names }
}

t.test('remote overlay endpoints change the records one by one: a delta, never a rebuild', async (t) => {
  const src = new AgentRecordSource()
  const deltas: RecordDelta[] = []
  let changes = 0
  src.on('change', () => { changes++ })
  src.on('delta', (d: RecordDelta) => { deltas.push(d) })
  src.update({ networks: [NET], endpoints: [EP], names: [NAMES], remote: new Map(), hostId: 'h1' })
  const eps = Array.from({ length: 1000 }, (_, i) => remote(i))
  src.setRemote(new Map([['ov1', eps]]), 'h1')
  t.equal(changes, 2, 'the local records and the full read are changes')
  t.equal(src.records().length, 1001)

  src.remoteChanged([{ overlay: 'ov1', endpointId: 'r5', endpoint: remote(5, 'h2', ['r5', 'alias5']) }])
  src.remoteChanged([{ overlay: 'ov1', endpointId: 'r7' }])
  src.remoteChanged([{ overlay: 'ov1', endpointId: 'new', endpoint: { ...remote(200), endpointId: 'new', names: ['fresh'] } }])
  src.remoteChanged([{ overlay: 'ov1', endpointId: 'r8', endpoint: remote(8) }])   // the same as before: nothing
  src.remoteChanged([{ overlay: 'ov1', endpointId: 'mine', endpoint: remote(9, 'h1', ['mine']) }])   // this host's own: nothing
  src.remoteChanged([{ overlay: 'other', endpointId: 'x', endpoint: remote(3) }])   // an overlay not run here: nothing
  t.equal(changes, 2, 'no change event: nothing reads every record again')
  t.same(deltas, [
    { remove: [{ network: 'overlay:ov1', name: 'r5', aliases: [], ip: '10.30.1.5' }], add: [{ network: 'overlay:ov1', name: 'r5', aliases: ['alias5'], ip: '10.30.1.5' }] },
    { remove: [{ network: 'overlay:ov1', name: 'r7', aliases: [], ip: '10.30.1.7' }], add: [] },
    { remove: [], add: [{ network: 'overlay:ov1', name: 'fresh', aliases: [], ip: '10.30.1.200' }] },
  ])
  // What the deltas built is what a full build of the final state gives.
  const final = eps.filter((e) => e.endpointId !== 'r7').map((e) => (e.endpointId === 'r5' ? remote(5, 'h2', ['r5', 'alias5']) : e))
  final.push({ ...remote(200), endpointId: 'new', names: ['fresh'] })
  const full = buildRecords({ networks: [NET], endpoints: [EP], names: [NAMES], remote: new Map([['ov1', final]]), hostId: 'h1' })
  t.same(RecordSet.from(src.records()).list(), RecordSet.from(full.entries).list())
  const patched = RecordSet.from(full.entries.filter((e) => e.name === 'local'))
  for (const e of eps) patched.add({ network: 'overlay:ov1', name: e.names![0]!, aliases: [], ip: e.ip })
  for (const d of deltas) patched.apply(d)
  t.same(patched.list(), RecordSet.from(full.entries).list(), 'a record set patched with the deltas equals the full build')

  // A local change rebuilds the local part only; the remote records stay.
  src.update({ networks: [NET], endpoints: [], names: [], remote: new Map(), hostId: 'h1' })
  t.equal(changes, 3)
  t.equal(src.records().length, 1000)
})

t.test('published container ports become SRV records of the endpoint\'s entry', async (t) => {
  const bind = (proto: 'tcp' | 'udp' | 'sctp', containerPort: number, containerPortEnd = containerPort) =>
    ({ proto, hostIp: '', hostPort: 8000, hostPortEnd: 8000, containerIp: EP.address, containerPort, containerPortEnd })
  t.same(servicePorts(undefined), [])
  t.same(servicePorts([bind('tcp', 80), bind('tcp', 80), bind('udp', 53), bind('sctp', 9), bind('tcp', 7000, 7002)]),
    [{ proto: 'tcp', port: 80 }, { proto: 'udp', port: 53 }, { proto: 'tcp', port: 7000 }, { proto: 'tcp', port: 7001 }, { proto: 'tcp', port: 7002 }],
    'each port once (two host addresses publish one port twice), sctp left out, ranges expanded')
  t.equal(servicePorts([bind('tcp', 1, 65535)]).length, 64, 'a huge range gives the first 64')
  const ep = { ...EP, ports: [bind('tcp', 80)] } as unknown as EndpointRecord
  const { entries } = buildRecords({ networks: [NET], endpoints: [ep], names: [NAMES], remote: new Map() })
  const set = RecordSet.from(entries)
  t.same(set.resolve('_80._tcp.local', 'SRV', ['overlay:ov1']), [{ name: '_80._tcp.local', type: 'SRV', data: '80 local' }])
  const none = buildRecords({ networks: [NET], endpoints: [EP], names: [NAMES], remote: new Map() })
  t.equal(none.entries[0]?.ports, undefined, 'no ports: the entry is as before')
})
