/**
 * Host-port allocation (src/nat/ports.ts) and the /proc parsers (src/nat/hostports.ts).
 */
import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import type { PortBinding, PortRequest, Protocol } from '../../src/model/types.js'
import { allocatePorts, findConflict, type PortUse } from '../../src/nat/ports.js'
import { parsePortRange, parseProcNet, parseReservedPorts, parseSctpEps, readHostPorts } from '../../src/nat/hostports.js'
import { HostPortPublisher } from '../../src/nat/publisher.js'
import type { EndpointRecord } from '../../src/model/types.js'

const CIP = '10.20.0.2'
const RANGE = { lo: 32768, hi: 32800 }
const none = (): boolean => false

function req (proto: Protocol, hostIp: string, hostPort: number, containerPort: number, opts: { hostEnd?: number, ctrEnd?: number } = {}): PortRequest {
  return {
    proto,
    hostIp,
    hostPort,
    hostPortEnd: opts.hostEnd ?? hostPort,
    containerPort,
    containerPortEnd: opts.ctrEnd ?? containerPort,
  }
}

function use (endpointId: string, proto: Protocol, hostIp: string, lo: number, hi = lo, containerPort = 80): PortUse {
  return {
    endpointId,
    binding: { proto, hostIp, hostPort: lo, hostPortEnd: hi, containerIp: '10.20.0.9', containerPort, containerPortEnd: containerPort + hi - lo },
  }
}

function alloc (requests: PortRequest[], used: PortUse[] = [], opts: { reserved?: number[], inUse?: (p: Protocol, n: number) => boolean, previous?: PortBinding[] } = {}): PortBinding[] {
  return allocatePorts(requests, used, RANGE, new Set(opts.reserved ?? []), opts.inUse ?? none, { containerIp: CIP, previous: opts.previous })
}

function err (fn: () => unknown): FerryError | undefined {
  try { fn() } catch (e) { if (e instanceof FerryError) return e; throw e }
  return undefined
}

t.test('explicit ports', async (t) => {
  t.same(alloc([req('tcp', '', 8080, 80)]), [{ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: CIP, containerPort: 80, containerPortEnd: 80 }])
  t.same(alloc([req('tcp', '0.0.0.0', 8080, 80)])[0]?.hostIp, '', '0.0.0.0 is the wildcard')
  const r = alloc([req('udp', '127.0.0.1', 20000, 30000, { hostEnd: 20999, ctrEnd: 30999 })])
  t.same(r[0], { proto: 'udp', hostIp: '127.0.0.1', hostPort: 20000, hostPortEnd: 20999, containerIp: CIP, containerPort: 30000, containerPortEnd: 30999 }, 'a range stays one binding')
  t.equal(alloc([req('tcp', '', 8080, 80)], [], { inUse: () => true, reserved: [8080] }).length, 1, 'explicit ports ignore host sockets and reservations')
})

t.test('conflicts', async (t) => {
  const used = [use('1234abcdef', 'tcp', '', 8080)]
  const e = err(() => alloc([req('tcp', '', 8080, 80)], used))
  t.equal(e?.code, 'PORT_CONFLICT')
  t.equal(e?.message, 'host port 8080/tcp on 0.0.0.0 is already published by endpoint 1234abcd (10.20.0.9:80)')
  t.equal(err(() => alloc([req('tcp', '192.0.2.1', 8080, 80)], used))?.code, 'PORT_CONFLICT', 'specific IP against wildcard')
  t.equal(err(() => alloc([req('tcp', '', 8080, 80)], [use('x', 'tcp', '127.0.0.1', 8080)]))?.code, 'PORT_CONFLICT', 'wildcard against specific IP')
  t.same(alloc([req('tcp', '192.0.2.2', 8080, 80)], [use('x', 'tcp', '192.0.2.1', 8080)]).length, 1, 'two specific IPs do not conflict')
  t.same(alloc([req('udp', '', 8080, 80)], used).length, 1, 'another protocol does not conflict')
  const r = err(() => alloc([req('tcp', '', 8000, 80, { hostEnd: 8100, ctrEnd: 180 })], used))
  t.match(r?.message, /^host ports 8000-8100\/tcp on 0.0.0.0 are already published by endpoint 1234abcd/, 'range overlap')
  t.equal(err(() => alloc([req('tcp', '', 9000, 80), req('tcp', '', 9000, 81)]))?.code, 'PORT_CONFLICT', 'two requests of one call')
  t.match(err(() => alloc([req('tcp', '', 9000, 80), req('tcp', '', 9000, 81)]))?.message, /the same endpoint/)
  t.ok(findConflict([use('a', 'sctp', '', 100, 200)], 'sctp', [{ family: 4, hostIp: '10.0.0.1', containerIp: CIP }], 200, 300))
  t.notOk(findConflict([use('a', 'sctp', '', 100, 200)], 'sctp', [{ family: 4, hostIp: '10.0.0.1', containerIp: CIP }], 201, 300))
  t.notOk(findConflict([use('a', 'sctp', '', 100, 200)], 'sctp', [{ family: 6, hostIp: '', containerIp: 'fd00::2' }], 100, 300), 'another family is another socket space')
})

t.test('bad requests', async (t) => {
  t.equal(err(() => alloc([req('tcp', '', 8000, 80, { hostEnd: 8005, ctrEnd: 82 })]))?.code, 'INVALID_REQUEST', 'lengths differ')
  t.equal(err(() => alloc([req('tcp', '', 8000, 80, { hostEnd: 7999 })]))?.code, 'INVALID_REQUEST', 'range ends before it starts')
  t.equal(err(() => alloc([req('tcp', '', 70000, 80)]))?.code, 'INVALID_REQUEST')
  t.equal(err(() => alloc([req('tcp', '', 0, 0)]))?.code, 'INVALID_REQUEST')
})

t.test('ephemeral ports', async (t) => {
  t.equal(alloc([req('tcp', '', 0, 80)])[0]?.hostPort, 32768, 'first port of the range')
  t.equal(alloc([req('tcp', '', 0, 80)], [use('a', 'tcp', '', 32768, 32770)])[0]?.hostPort, 32771, 'skips publications')
  t.equal(alloc([req('tcp', '', 0, 80)], [use('a', 'udp', '', 32768, 32770)])[0]?.hostPort, 32768, 'other protocol does not count')
  t.equal(alloc([req('tcp', '', 0, 80)], [], { reserved: [32768, 32769] })[0]?.hostPort, 32770, 'skips ip_local_reserved_ports')
  t.equal(alloc([req('tcp', '', 0, 80)], [], { inUse: (p, n) => p === 'tcp' && n < 32775 })[0]?.hostPort, 32775, 'skips host sockets')
  const two = alloc([req('tcp', '', 0, 80), req('tcp', '', 0, 81)])
  t.same(two.map((b) => b.hostPort), [32768, 32769], 'two requests get two ports')
  const block = alloc([req('udp', '', 0, 100, { ctrEnd: 109 })], [use('a', 'udp', '', 32770)])
  t.same([block[0]?.hostPort, block[0]?.hostPortEnd], [32771, 32780], 'a container range gets a contiguous block')
  const e = err(() => alloc([req('tcp', '', 0, 80)], [use('a', 'tcp', '', 32768, 32800)]))
  t.equal(e?.code, 'NO_FREE_PORT')
  t.match(e?.message, /ephemeral range 32768-32800/)
  t.equal(err(() => alloc([req('tcp', '', 0, 100, { ctrEnd: 199 })]))?.code, 'NO_FREE_PORT', 'block larger than the range')
  const prev: PortBinding[] = [{ proto: 'tcp', hostIp: '', hostPort: 32790, hostPortEnd: 32790, containerIp: CIP, containerPort: 80, containerPortEnd: 80 }]
  t.equal(alloc([req('tcp', '', 0, 80)], [], { previous: prev })[0]?.hostPort, 32790, 'an earlier port is kept')
  t.equal(alloc([req('tcp', '', 0, 80)], [use('b', 'tcp', '', 32790)], { previous: prev })[0]?.hostPort, 32768, 'unless taken meanwhile')
})

t.test('a host range onto one container port picks one free port', async (t) => {
  const r = alloc([req('tcp', '', 8000, 80, { hostEnd: 8010 })], [use('a', 'tcp', '', 8000, 8001)], { inUse: (_p, n) => n === 8002 })
  t.same([r[0]?.hostPort, r[0]?.hostPortEnd, r[0]?.containerPort], [8003, 8003, 80])
  const e = err(() => alloc([req('tcp', '', 8000, 80, { hostEnd: 8001 })], [use('a', 'tcp', '', 8000, 8001)]))
  t.equal(e?.code, 'PORT_CONFLICT', 'all taken by a publication')
  t.equal(err(() => alloc([req('tcp', '', 8000, 80, { hostEnd: 8001 })], [], { inUse: () => true }))?.code, 'NO_FREE_PORT', 'all taken by host sockets')
})

// Its time is measured by bench/planners.ts (npm run bench:planners), not here.
t.test('1,000 endpoints each holding a port: the pick is the first free port past them', async (t) => {
  const used = Array.from({ length: 1000 }, (_, i) => use(`e${i}`, 'tcp', '', 10000 + i))
  const r = allocatePorts([req('tcp', '', 0, 80)], used, { lo: 10000, hi: 60999 }, new Set(), none, { containerIp: CIP })
  t.equal(r[0]?.hostPort, 11000)
})

t.test('/proc parsers', async (t) => {
  t.same(parsePortRange('32768\t60999\n'), { lo: 32768, hi: 60999 })
  t.equal(parsePortRange('garbage'), undefined)
  t.same([...parseReservedPorts('\n')], [])
  t.same([...parseReservedPorts('1000,2000-2002\n')], [1000, 2000, 2001, 2002])
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1161 1 0 100 0 0 10 0',
    '   1: 0100007F:8AE2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1162 1 0 100 0 0 10 0',
  ].join('\n')
  t.same([...parseProcNet(tcp, 'tcp')], [8080], 'TCP: listeners only')
  const udp6 = [
    '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    '  10: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0',
  ].join('\n')
  t.same([...parseProcNet(udp6, 'udp')], [5353], 'UDP: every bound socket, IPv6 too')
  t.same([...parseSctpEps(' ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n ffff8 ffff9 2   10  29   3868        0 1 10.0.0.1\n')], [3868])
  const host = await readHostPorts()
  t.ok(host.range.lo >= 1 && host.range.hi <= 65535 && host.range.lo <= host.range.hi, 'the real /proc reads')
})

t.test('HostPortPublisher against other endpoints', async (t) => {
  const ep = (id: string, address: string, ports: PortBinding[]): EndpointRecord => ({
    id, networkId: 'n', address, prefixLen: 24, mac: '', hostVeth: '', containerVeth: '', joined: true,
    portRequests: [], ports, exposed: [], createdAt: '',
  })
  const other = ep('other0000', '10.20.0.3', [{ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, containerIp: '10.20.0.3', containerPort: 80, containerPortEnd: 80 }])
  let reads = 0
  const pub = new HostPortPublisher(async () => { reads++; return { range: { lo: 40000, hi: 40010 }, reserved: new Set(), inUse: none } })
  const me = ep('me', '10.20.0.2', [])
  await t.rejects(pub.allocate(me, [req('tcp', '', 8080, 80)], [other]), { code: 'PORT_CONFLICT' })
  t.equal(reads, 0, 'explicit ports do not read /proc')
  const got = await pub.allocate(me, [req('tcp', '', 0, 80)], [other])
  t.same([got[0]?.hostPort, got[0]?.containerIp], [40000, '10.20.0.2'])
  t.equal(reads, 1)
  t.same(await pub.allocate(me, [], [other]), [])
})

// ---------------------------------------------------------------------------
// Both families.

const CIP6 = 'fd00:20::2'

function alloc6 (requests: PortRequest[], used: PortUse[] = [], opts: { inUse?: (p: Protocol, n: number) => boolean, previous?: PortBinding[] } = {}): PortBinding[] {
  return allocatePorts(requests, used, RANGE, new Set(), opts.inUse ?? none, { containerIp: CIP, containerIp6: CIP6, previous: opts.previous })
}

function use6 (endpointId: string, proto: Protocol, hostIp: string, lo: number): PortUse {
  return { endpointId, binding: { proto, hostIp, hostPort: lo, hostPortEnd: lo, containerIp: 'fd00:20::9', containerPort: 80, containerPortEnd: 80 } }
}

const b = (hostIp: string, hostPort: number, containerIp: string, containerPort = 80): PortBinding =>
  ({ proto: 'tcp', hostIp, hostPort, hostPortEnd: hostPort, containerIp, containerPort, containerPortEnd: containerPort })

t.test('dual-stack: a port on all addresses is one binding per family, same host port', async (t) => {
  t.same(alloc6([req('tcp', '', 8080, 80)]), [b('', 8080, CIP), b('', 8080, CIP6)])
  t.same(alloc6([req('tcp', '0.0.0.0', 8080, 80)]), [b('', 8080, CIP)], '0.0.0.0 is IPv4 only')
  t.same(alloc6([req('tcp', '::', 8080, 80)]), [b('', 8080, CIP6)], ':: is IPv6 only')
  t.same(alloc6([req('tcp', '2001:db8::5', 0, 80)]), [b('2001:db8::5', RANGE.lo, CIP6)], '[2001:db8::5]::80 picks a port')
  t.same(alloc([req('tcp', '::', 8080, 80), req('tcp', '2001:db8::5', 8081, 80)]), [], 'an IPv4-only endpoint publishes nothing over IPv6')
  t.same(alloc6([req('tcp', '', 0, 80)], [use6('x', 'tcp', '', RANGE.lo)]), [b('', RANGE.lo + 1, CIP), b('', RANGE.lo + 1, CIP6)],
    'an ephemeral port is free in both families')
  t.same(alloc6([req('tcp', '', 0, 80)], [], { previous: [b('', RANGE.lo + 5, CIP), b('', RANGE.lo + 5, CIP6)] }), [b('', RANGE.lo + 5, CIP), b('', RANGE.lo + 5, CIP6)], 'keeps its old port')
  t.match(err(() => alloc6([req('tcp', '::1', 8080, 80)]))?.message, /IPv6 loopback \[::1\] cannot be published/, '::1 is refused with a sentence')
  t.same(alloc([req('tcp', '::1', 8080, 80)]), [], 'an IPv4-only endpoint ignores it, as every IPv6 address (as before IPv6)')
})

t.test('dual-stack: ports are per family', async (t) => {
  t.same(alloc6([req('tcp', '0.0.0.0', 8080, 80)], [use6('x', 'tcp', '', 8080)]), [b('', 8080, CIP)], 'IPv6 [::]:8080 of another endpoint does not hold 0.0.0.0:8080')
  const e = err(() => alloc6([req('tcp', '', 8080, 80)], [use6('x', 'tcp', '', 8080)]))
  t.equal(e?.code, 'PORT_CONFLICT')
  t.equal(e?.message, 'host port 8080/tcp on :: is already published by endpoint x ([fd00:20::9]:80)')
  t.equal(err(() => alloc6([req('tcp', '2001:db8::5', 8080, 80)], [use6('x', 'tcp', '', 8080)]))?.code, 'PORT_CONFLICT', 'a specific IPv6 address against the IPv6 wildcard')
})

t.test('netavark#1338: -p 8080:8080 and -p [::]:8080:8080 together are one publication per family', async (t) => {
  const out = alloc6([req('tcp', '', 8080, 8080), req('tcp', '::', 8080, 8080)])
  t.same(out, [b('', 8080, CIP, 8080), b('', 8080, CIP6, 8080)], 'no duplicate, no conflict')
  t.same(alloc6([req('tcp', '::', 8080, 8080), req('tcp', '', 8080, 8080)]), [b('', 8080, CIP6, 8080), b('', 8080, CIP, 8080)], 'in either order')
})
