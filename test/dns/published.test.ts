import t from 'tap'
import { PublishedNames, clusterPorts } from '../../src/dns/published.js'
import type { EndpointRecord, NetworkRecord, PortBinding } from '../../src/model/types.js'

const ov = { id: 'n-ov', overlay: { name: 'ov1', vni: 4096 } } as NetworkRecord
const br = { id: 'n-br' } as NetworkRecord
const ep = (id: string, networkId = ov.id) => ({ id, networkId, address: '10.30.0.2', mac: '02:42:0a:1e:00:02' }) as EndpointRecord

t.test('only changed names are due; a failure is sent again', async (t) => {
  const p = new PublishedNames()
  const eps = [ep('a'), ep('b'), ep('c', br.id)]
  const names = new Map([['a', ['web']], ['b', ['db']], ['c', ['local']]])
  t.same(p.due(eps, [ov, br], names).map((x) => [x.overlay, x.endpoint.id, x.names]), [['ov1', 'a', ['web']], ['ov1', 'b', ['db']]], 'overlay endpoints only')
  t.same(p.due(eps, [ov, br], names), [], 'nothing changed')
  names.set('a', ['web', 'www'])
  p.failed('b')
  t.same(p.due(eps, [ov, br], names).map((x) => x.endpoint.id), ['a', 'b'])
})

t.test('does not grow across create/delete cycles', async (t) => {
  const p = new PublishedNames()
  const names = new Map<string, string[]>()
  const live: EndpointRecord[] = []
  for (let cycle = 0; cycle < 500; cycle++) {
    const e = ep(`ep-${cycle}`)
    names.set(e.id, [`c${cycle}`])
    live.push(e)
    p.due(live, [ov], names)
    // The container goes: its endpoint and its names with it.
    live.splice(live.indexOf(e), 1)
    names.delete(e.id)
    p.due(live, [ov], names)
  }
  t.equal(p.size, 0, 'nothing kept for endpoints that are gone')
  const keep = ep('keep')
  names.set('keep', ['k'])
  p.due([keep], [ov], names)
  p.due([keep], [], names) // its overlay network left: still an endpoint, nothing to publish
  t.equal(p.size, 1)
  p.due([], [], names)
  t.equal(p.size, 0)
})

const bind = (proto: PortBinding['proto'], containerPort: number, hostPort: number, hostIp = '', span = 0): PortBinding =>
  ({ proto, hostIp, hostPort, hostPortEnd: hostPort + span, containerIp: '10.30.0.2', containerPort, containerPortEnd: containerPort + span })

t.test('clusterPorts: TCP and UDP bindings, ranges expanded port by port, each once, the first 64, host address canonical', async (t) => {
  t.same(clusterPorts(undefined), [])
  t.same(clusterPorts([bind('tcp', 80, 8080), bind('tcp', 80, 8080), bind('udp', 53, 5353, '::0'), bind('sctp', 9, 9), bind('tcp', 7000, 9000, '192.168.50.2', 1)]), [
    { proto: 'tcp', port: 80, hostPort: 8080 },
    { proto: 'udp', port: 53, hostPort: 5353, hostIp: '::' },
    { proto: 'tcp', port: 7000, hostPort: 9000, hostIp: '192.168.50.2' },
    { proto: 'tcp', port: 7001, hostPort: 9001, hostIp: '192.168.50.2' },
  ])
  t.equal(clusterPorts([bind('tcp', 1, 1, '', 65534)]).length, 64, 'a huge range gives the first 64')
})

t.test('a change of the published ports is due again (one publication), the same ports are not', async (t) => {
  const p = new PublishedNames()
  const names = new Map([['a', ['web']]])
  const withPorts = (ports: PortBinding[]): EndpointRecord => ({ ...ep('a'), ports })
  t.same(p.due([withPorts([])], [ov], names).map((x) => x.ports), [[]], 'first: names, no ports')
  t.same(p.due([withPorts([bind('tcp', 80, 8080)])], [ov], names).map((x) => x.ports), [[{ proto: 'tcp', port: 80, hostPort: 8080 }]], 'a port published: due')
  t.same(p.due([withPorts([bind('tcp', 80, 8080)])], [ov], names), [], 'the same again: nothing')
  t.same(p.due([withPorts([])], [ov], names).map((x) => x.ports), [[]], 'unpublished: due with none ([] clears them)')
})
