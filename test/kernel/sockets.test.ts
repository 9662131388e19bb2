/**
 * src/kernel/sockets.ts (and src/nat/hostports.ts's reading of it) against the real
 * kernel: sockets the test opens on loopback show in the tables. Read-only.
 */
import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:net'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { readSocketTables } from '../../src/kernel/sockets.js'
import { parseProcNet, readHostPorts } from '../../src/nat/hostports.js'

async function listen (t: Test, host: string): Promise<number> {
  const server: Server = createServer()
  server.listen(0, host)
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const addr = server.address()
  return typeof addr === 'object' && addr !== null ? addr.port : 0
}

t.test('a TCP listener and a bound UDP socket are in the tables', async (t) => {
  const tcp4 = await listen(t, '127.0.0.1')
  const udp = createSocket('udp4')
  udp.bind(0, '127.0.0.1')
  await once(udp, 'listening')
  t.teardown(() => { udp.close() })
  const tables = await readSocketTables()
  t.ok(parseProcNet(tables.tcp, 'tcp').has(tcp4), `TCP ${tcp4} listening, in /proc/net/tcp`)
  t.ok(parseProcNet(tables.udp, 'udp').has(udp.address().port), 'the UDP port, in /proc/net/udp')
  t.type(tables.sctp, 'string', 'SCTP: its table, or empty without the module')
  const ports = await readHostPorts()
  t.ok(ports.inUse('tcp', tcp4), 'readHostPorts sees the listener')
  t.ok(ports.inUse('udp', udp.address().port), 'and the UDP socket')
  t.ok(ports.range.lo >= 1 && ports.range.hi <= 65535 && ports.range.lo <= ports.range.hi, 'the ephemeral range')
})

t.test('an IPv6 listener, when the kernel has IPv6', async (t) => {
  const tables = await readSocketTables()
  if (tables.tcp6 === '') { t.comment('no /proc/net/tcp6 here'); return }
  const port = await listen(t, '::1')
  t.ok(parseProcNet((await readSocketTables()).tcp6, 'tcp').has(port), `TCP ${port} on ::1, in /proc/net/tcp6`)
})
