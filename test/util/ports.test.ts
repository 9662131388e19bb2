import t from 'tap'
import { hostSideText, publishedText } from '../../src/util/ports.js'
import type { PortBinding } from '../../src/model/types.js'

const b = (o: Partial<PortBinding>): PortBinding => ({ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '10.0.0.2', containerPort: 80, containerPortEnd: 80, ...o })

t.test('a port published on all addresses reads apart in each family, as docker ps writes it', async (t) => {
  t.equal(publishedText(b({})), '0.0.0.0:8080->80/tcp')
  t.equal(publishedText(b({ containerIp: 'fd00:91::2' })), '[::]:8080->80/tcp', 'the IPv6 binding of the same port (was 0.0.0.0 twice)')
})

t.test('host addresses, ranges and protocols', async (t) => {
  t.equal(publishedText(b({ hostIp: '127.0.0.1', proto: 'udp' })), '127.0.0.1:8080->80/udp')
  t.equal(publishedText(b({ hostIp: '2001:db8::5', containerIp: 'fd00:91::2', hostPortEnd: 8081, containerPortEnd: 81 })), '[2001:db8::5]:8080-8081->80-81/tcp')
  t.equal(hostSideText(b({ hostIp: '::1', containerIp: 'fd00::2' })), '[::1]:8080')
})
