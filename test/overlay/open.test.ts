/** Opening the overlay (src/overlay/open.ts): the overlays a restarted agent rebuilds from its network records. */
import t from 'tap'
import { overlaysOf } from '../../src/overlay/open.js'
import { networkRecord } from '../fixtures/records.js'

t.test('overlays of the network records: bridges left out, MTU only where given, the encrypted flag kept', async (t) => {
  const nets = [
    networkRecord('a', { subnet: '10.1.0.0/24', gateway: '10.1.0.1', overlay: { name: 'ov1', vni: 4096 } as never, mtu: 1450 }),
    networkRecord('b', { subnet: '10.2.0.0/24', gateway: '10.2.0.1', overlay: { name: 'ov2', vni: 4097 } as never, mtu: 1400, options: { 'com.docker.network.driver.mtu': '1400', 'ferry.encrypt': 'wireguard' } }),
    networkRecord('c'),
  ]
  t.same(overlaysOf(nets), [
    { name: 'ov1', subnet: '10.1.0.0/24', gateway: '10.1.0.1', vni: 4096, mtu: undefined },
    { name: 'ov2', subnet: '10.2.0.0/24', gateway: '10.2.0.1', vni: 4097, mtu: 1400, encrypt: 'wireguard' },
  ])
})
