import t from 'tap'
import { PublishedNames } from '../../src/dns/published.js'
import type { EndpointRecord, NetworkRecord } from '../../src/model/types.js'

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
