import t from 'tap'
import { AgentRecordSource, buildRecords, engineClientPrefixes, listenAddresses, servicePorts } from '../../src/dns/source.js'
import { RecordSet, type RecordDelta } from '../../src/dns/records.js'
import type { ClusterEndpoint } from '../../src/cluster/types.js'
import type { EndpointRecord, NetworkRecord } from '../../src/model/types.js'
import type { ContainerNames } from '../../src/docker/watch.js'

const NET = { id: 'n'.repeat(64), gateway: '10.30.0.1', overlay: { name: 'ov1', vni: 4096 } } as unknown as NetworkRecord
const EP = { id: 'e'.repeat(64), networkId: NET.id, address: '10.30.0.2' } as unknown as EndpointRecord
const NAMES: ContainerNames = { containerId: 'c1', name: 'local', endpoints: new Map([[EP.id, { networkId: NET.id, aliases: [] }]]), links: [] }

function remote (i: number, host = 'h2', names = [`r${i}`]): ClusterEndpoint {
  return { endpointId: `r${i}`, ip: `10.30.${1 + (i >> 8)}.${i & 255}`, mac: '02:42:0a:1e:01:00', hostId: host, vtep: '192.168.50.2', names }
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

t.test('dual-stack endpoints: AAAA for names, aliases and links, PTR in ip6.arpa, clients known by both addresses', async (t) => {
  const net = { id: 'd'.repeat(64), gateway: '10.40.0.1', gateway6: 'fd00:40::1' } as unknown as NetworkRecord
  const web = { id: 'w'.repeat(64), networkId: net.id, address: '10.40.0.2', address6: 'fd00:40::2' } as unknown as EndpointRecord
  const db = { id: 'b'.repeat(64), networkId: net.id, address: '10.40.0.3' } as unknown as EndpointRecord
  const only6 = { id: 'o'.repeat(64), networkId: net.id, address: '', address6: 'fd00:40::4' } as unknown as EndpointRecord
  const names: ContainerNames[] = [
    { containerId: 'c1', name: 'web', endpoints: new Map([[web.id, { networkId: net.id, aliases: ['front'] }]]), links: [] },
    { containerId: 'c2', name: 'db', endpoints: new Map([[db.id, { networkId: net.id, aliases: [] }]]), links: [{ target: 'web', alias: 'www' }] },
    { containerId: 'c3', name: 'six', endpoints: new Map([[only6.id, { networkId: net.id, aliases: [] }]]), links: [] },
  ]
  const { entries, clients } = buildRecords({ networks: [net], endpoints: [web, db, only6], names, remote: new Map() })
  t.same(entries.find((e) => e.name === 'web'), { network: net.id, name: 'web', aliases: ['front', 'www'], ip: '10.40.0.2', ip6: 'fd00:40::2' })
  t.equal(entries.find((e) => e.name === 'db')?.ip6, undefined, 'an IPv4-only endpoint has no ip6')
  t.same([...clients.keys()].sort(), ['10.40.0.2', '10.40.0.3', 'fd00:40::2', 'fd00:40::4'], 'each address of each endpoint is a client; no empty address')
  const rs = RecordSet.from(entries)
  const scope = [net.id]
  for (const n of ['web', 'front', 'www']) {
    t.same(rs.resolve(n, 'AAAA', scope), [{ name: n, type: 'AAAA', data: 'fd00:40::2' }], `AAAA of ${n}`)
    t.same(rs.resolve(n, 'A', scope), [{ name: n, type: 'A', data: '10.40.0.2' }], `A of ${n}`)
  }
  t.same(rs.resolve('db', 'AAAA', scope), [], 'AAAA of an IPv4-only name: NODATA (not undefined, which forwards)')
  t.same(rs.resolve('six', 'A', scope), [], 'A of an IPv6-only name: NODATA')
  t.same(rs.resolve('six', 'AAAA', scope), [{ name: 'six', type: 'AAAA', data: 'fd00:40::4' }])
  t.same(rs.resolve('2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa.', 'PTR', scope), [{
    name: '2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.0.0.0.0.d.f.ip6.arpa', type: 'PTR', data: 'web',
  }], 'PTR of the IPv6 address names the container')
  t.same(rs.resolve('2.0.40.10.in-addr.arpa', 'PTR', scope)?.map((a) => a.data), ['web'])
  t.equal(rs.resolve('web', 'AAAA', ['other']), undefined, 'another scope does not see it')
})

t.test('listenAddresses: each gateway, and the IPv6 gateway of a dual-stack or IPv6-only network, once each', async (t) => {
  const nets = [
    { gateway: '10.1.0.1' },
    { gateway: '10.2.0.1', gateway6: 'fd00:2::1' },
    { gateway: '', gateway6: 'fd00:3::1' },
    { gateway: '10.1.0.1', gateway6: 'fd00:2::1' },
  ] as unknown as NetworkRecord[]
  t.same(listenAddresses(nets, 53), [
    { ip: '10.1.0.1', port: 53 }, { ip: '10.2.0.1', port: 53 }, { ip: 'fd00:2::1', port: 53 }, { ip: 'fd00:3::1', port: 53 },
  ])
  t.same(listenAddresses([], 53), [])
})

t.test('engine clients (--dns-engine-clients): a source in the prefixes sees every overlay\'s names, not local networks\' names', async (t) => {
  const LOCAL = { id: 'l'.repeat(64), gateway: '10.40.0.1' } as unknown as NetworkRecord
  const NET2 = { id: 'm'.repeat(64), gateway: '10.31.0.1', overlay: { name: 'ov2', vni: 4097 } } as unknown as NetworkRecord
  const src = new AgentRecordSource()
  t.same(src.clientNetworks('172.17.0.2'), [], 'no prefixes: a stranger')
  src.setEngineClients(['172.17.0.5/16', 'FD00:17::/64'])
  t.same(src.clientNetworks('172.17.0.2'), [], 'no overlay yet: nothing to see, still a stranger (REFUSED)')
  src.update({ networks: [NET, NET2, LOCAL], endpoints: [EP], names: [NAMES], remote: new Map(), hostId: 'h1' })
  const scopes = src.clientNetworks('172.17.0.2')
  t.same(scopes, ['overlay:ov1', 'overlay:ov2'], 'every overlay, not the local network')
  t.equal(src.clientNetworks('172.17.9.9'), scopes, 'the same array for every engine client (the server\'s answers are found by it)')
  t.same(src.clientNetworks('fd00:17::42'), scopes, 'IPv6 prefixes too')
  t.same(src.clientNetworks('172.18.0.2'), [], 'outside the prefixes: a stranger')
  t.same(src.clientNetworks('fd00:18::1'), [])
  t.same(src.clientNetworks('10.30.0.2'), ['overlay:ov1'], 'ferry\'s own endpoints keep their own scope')
  src.update({ networks: [NET, NET2, LOCAL], endpoints: [EP], names: [NAMES], remote: new Map(), hostId: 'h1' })
  t.equal(src.clientNetworks('172.17.0.2'), scopes, 'unchanged networks keep the array')
  src.update({ networks: [NET2, LOCAL], endpoints: [], names: [], remote: new Map(), hostId: 'h1' })
  t.same(src.clientNetworks('172.17.0.2'), ['overlay:ov2'], 'an overlay gone is gone for them too')
  t.throws(() => src.setEngineClients(['172.17.0.0']), { code: 'INVALID_OPTION', message: /--dns-engine-clients "172.17.0.0" must be a prefix/ })
  t.throws(() => engineClientPrefixes(['nope/8']), { code: 'INVALID_OPTION' })
  t.same(engineClientPrefixes(['172.17.0.5/16', 'FD00:17::1/64']), ['172.17.0.0/16', 'fd00:17::/64'])
})

t.test('a remote overlay endpoint\'s published ports are SRV records on every host: the container port, its name as target', async (t) => {
  const src = new AgentRecordSource()
  const deltas: RecordDelta[] = []
  src.on('delta', (d: RecordDelta) => { deltas.push(d) })
  src.update({ networks: [NET], endpoints: [EP], names: [NAMES], remote: new Map(), hostId: 'h1' })
  const web: ClusterEndpoint = { ...remote(4, 'h2', ['web', 'www']), ports: [{ proto: 'tcp', port: 80, hostPort: 8080 }, { proto: 'tcp', port: 80, hostPort: 8080, hostIp: '192.168.50.2' }, { proto: 'udp', port: 53, hostPort: 5353 }] }
  src.setRemote(new Map([['ov1', [web, remote(5)]]]), 'h1')
  const set = RecordSet.from(src.records())
  const scope = ['overlay:ov1']
  t.same(set.resolve('_80._tcp.web', 'SRV', scope), [{ name: '_80._tcp.web', type: 'SRV', data: '80 web' }], 'the container port (reached over the overlay), its container name as target')
  t.same(set.resolve('_80._tcp.www.', 'SRV', scope), [{ name: '_80._tcp.www', type: 'SRV', data: '80 web' }], 'for an alias too')
  t.same(set.resolve('_53._udp.web', 'SRV', scope), [{ name: '_53._udp.web', type: 'SRV', data: '53 web' }])
  t.equal(set.resolve('_8080._tcp.web', 'SRV', scope), undefined, 'the host port is no SRV name')
  t.equal(set.resolve('_80._tcp.web', 'SRV', ['other']), undefined, 'scoped as its A records')
  t.equal(set.resolve('_80._tcp.r5', 'SRV', scope), undefined, 'an endpoint that publishes nothing has none')
  t.notOk('ports' in src.records().find((e) => e.name === 'r5')!, 'and no ports field')

  // Its ports change: one delta, and the SRV records follow it.
  src.remoteChanged([{ overlay: 'ov1', endpointId: 'r4', endpoint: { ...web, ports: [{ proto: 'tcp', port: 443, hostPort: 8443 }] } }])
  src.remoteChanged([{ overlay: 'ov1', endpointId: 'r4', endpoint: { ...web, ports: [{ proto: 'tcp', port: 443, hostPort: 9443 }] } }])   // another host port only: same SRV
  t.equal(deltas.length, 1, 'a change of the container ports is a delta; of the host port alone, none')
  for (const d of deltas) set.apply(d)
  t.equal(set.resolve('_80._tcp.web', 'SRV', scope), undefined)
  t.same(set.resolve('_443._tcp.web', 'SRV', scope), [{ name: '_443._tcp.web', type: 'SRV', data: '443 web' }])
  src.remoteChanged([{ overlay: 'ov1', endpointId: 'r4', endpoint: remote(4, 'h2', ['web', 'www']) }])
  set.apply(deltas[1]!)
  t.equal(set.resolve('_443._tcp.web', 'SRV', scope), undefined, 'a record without ports (an older host\'s) has none')
  t.same(set.resolve('web', 'A', scope), [{ name: 'web', type: 'A', data: '10.30.1.4' }])
})
