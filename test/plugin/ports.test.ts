import t from 'tap'
import { parseExposed, parsePortMap } from '../../src/plugin/ports.js'

t.test('a 1,000-port range sent as 1,000 entries becomes one request', async (t) => {
  const wire = Array.from({ length: 1000 }, (_, i) => ({ Proto: 6, IP: '', Port: 20000 + i, HostIP: '', HostPort: 20000 + i, HostPortEnd: 20000 + i }))
  wire.reverse()
  t.same(parsePortMap(wire), [{ proto: 'tcp', containerPort: 20000, containerPortEnd: 20999, hostIp: '', hostPort: 20000, hostPortEnd: 20999 }])
})

t.test('the forms of -p', async (t) => {
  t.same(parsePortMap([
    { Proto: 6, Port: 80, HostIP: '127.0.0.1', HostPort: 0, HostPortEnd: 0 },
    { Proto: 17, Port: 53, HostIP: '0.0.0.0', HostPort: 5353, HostPortEnd: 5353 },
    { Proto: 132, Port: 9, HostIP: '', HostPort: 9999, HostPortEnd: 0 },
    { Proto: 6, Port: 81, HostIP: '::', HostPort: 8081, HostPortEnd: 8081 },
    { Proto: 6, Port: 82, HostIP: '', HostPort: 8000, HostPortEnd: 8010 },
  ]), [
    { proto: 'sctp', containerPort: 9, containerPortEnd: 9, hostIp: '', hostPort: 9999, hostPortEnd: 9999 },
    { proto: 'tcp', containerPort: 82, containerPortEnd: 82, hostIp: '', hostPort: 8000, hostPortEnd: 8010 },
    { proto: 'tcp', containerPort: 81, containerPortEnd: 81, hostIp: '::', hostPort: 8081, hostPortEnd: 8081 },
    { proto: 'tcp', containerPort: 80, containerPortEnd: 80, hostIp: '127.0.0.1', hostPort: 0, hostPortEnd: 0 },
    { proto: 'udp', containerPort: 53, containerPortEnd: 53, hostIp: '0.0.0.0', hostPort: 5353, hostPortEnd: 5353 },
  ], 'IPv6 host addresses are kept; 0.0.0.0 and :: name one family, no address both')
  t.same(parsePortMap([{ Proto: 6, Port: 80, HostIP: '2001:DB8:0::5', HostPort: 0 }]).map((r) => r.hostIp), ['2001:db8::5'], 'canonical')
  t.throws(() => parsePortMap([{ Proto: 99, Port: 1 }]), { code: 'INVALID_REQUEST', message: /protocol number 99/ })
  t.throws(() => parsePortMap([{ Proto: 6, Port: 1, HostIP: 'banana' }]), { message: /not an IP address/ })
  t.same(parseExposed([{ Proto: 6, Port: 80 }, { Proto: 6, Port: 80 }, { Proto: 17, Port: 53 }]), [{ proto: 'tcp', port: 80 }, { proto: 'udp', port: 53 }])
})
