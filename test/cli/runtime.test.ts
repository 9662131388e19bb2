/**
 * The CLI's runtime commands (src/cli/runtime.ts), what is pure in them: the address
 * options of `ferry network create`, repeatable as docker network create takes them.
 */
import t from 'tap'
import { addressOptions } from '../../src/cli/runtime.js'

t.test('--subnet, --gateway and --ip-range: one of each family, sorted by family', async (t) => {
  t.same(addressOptions({ subnet: [], gateway: [], ipRange: [] }), {})
  t.same(addressOptions({ subnet: ['fd00:1::/64', '10.1.0.0/24'], gateway: ['10.1.0.254', 'fd00:1::fe'], ipRange: ['fd00:1::/80', '10.1.0.128/25'] }), {
    subnet: '10.1.0.0/24', subnet6: 'fd00:1::/64', gateway: '10.1.0.254', gateway6: 'fd00:1::fe', ipRange: '10.1.0.128/25', ipRange6: 'fd00:1::/80',
  })
  t.throws(() => addressOptions({ subnet: ['10.1.0.0/24', '10.2.0.0/24'], gateway: [], ipRange: [] }), /--subnet 10\.2\.0\.0\/24: only one --subnet per address family \(10\.1\.0\.0\/24 was given too\)/)
  t.throws(() => addressOptions({ subnet: [], gateway: ['fd00::1', 'fd00::2'], ipRange: [] }), /only one --gateway per address family/)
  t.same(addressOptions({ subnet: ['not-a-cidr'], gateway: [], ipRange: [] }), { subnet: 'not-a-cidr' }, 'neither family: left to the agent, which names what is wrong')
})
