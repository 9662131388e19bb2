/** src/nat/desired.ts: an object set again with an equal value keeps its entry, so a reconcile with nothing changed makes no plan. */
import t from 'tap'
import { DesiredState } from '../../src/nat/desired.js'
import type { NatEndpoint, NatNetwork } from '../../src/nat/types.js'
import { bind, endpoint, net } from '../harness/firewall.js'

function world () {
  const planned: string[] = []
  const d = new DesiredState((ep: NatEndpoint, n: NatNetwork | undefined) => {
    planned.push(ep.id.slice(0, 2))
    return { localnet: false, bridge: n?.bridge }
  })
  return { d, planned }
}

const clone = <T> (x: T): T => JSON.parse(JSON.stringify(x)) as T

t.test('a replace with equal values keeps every entry: the change has the same objects before and after, no plan is made', async (t) => {
  const { d, planned } = world()
  const n1 = net(1)
  const state = { networks: [n1], endpoints: [endpoint('e1', n1, 2, [(ip) => bind('tcp', '', 8080, ip, 80)])], links: [{ id: 'l1', networkId: n1.id, parentIp: '10.31.0.2', childIp: '10.31.0.3', ports: [] }] }
  d.replace(d.newChange(), clone(state))
  t.same(planned, ['e1'])
  const change = d.newChange()
  d.replace(change, clone(state))
  t.same(planned, ['e1'], 'no plan made again')
  for (const kind of ['networks', 'endpoints', 'links'] as const) {
    for (const [id, c] of change[kind]) t.equal(c.before, c.after, `${kind} ${id.slice(0, 4)}: the same object before and after`)
  }
})

t.test('a changed endpoint, or one whose network changed, is planned again', async (t) => {
  const { d, planned } = world()
  const n1 = net(1)
  const e1 = endpoint('e1', n1, 2, [(ip) => bind('tcp', '', 8080, ip, 80)])
  const e2 = endpoint('e2', n1, 3, [])
  d.replace(d.newChange(), { networks: [n1], endpoints: [e1, e2] })
  planned.length = 0
  const c1 = d.newChange()
  d.replace(c1, { networks: [clone(n1)], endpoints: [{ ...clone(e1), ports: [] }, clone(e2)] })
  t.same(planned, ['e1'], 'only the endpoint whose ports changed')
  t.not(c1.endpoints.get(e1.id)?.before, c1.endpoints.get(e1.id)?.after)
  planned.length = 0
  const c2 = d.newChange()
  d.replace(c2, { networks: [{ ...n1, bridge: 'fy-other' }], endpoints: [clone(e1), clone(e2)] })
  t.same(planned.sort(), ['e1', 'e2'], 'a network that changed re-plans its endpoints')
  t.match(d.endpoints.get(e2.id)?.plan, { bridge: 'fy-other' })
})
