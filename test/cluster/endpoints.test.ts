import t from 'tap'
import { isDeepStrictEqual } from 'node:util'
import { ClaimMarks, EndpointTable, HashSlots, packIp, packMac, unpackIp, unpackMac } from '../../src/cluster/endpoints.js'
import type { ClusterEndpoint } from '../../src/cluster/types.js'

const ep = (i: number, more: Partial<ClusterEndpoint> = {}): ClusterEndpoint => ({
  endpointId: `e${i}`, ip: `10.30.${i >> 8}.${i & 255}`, mac: `02:42:0a:1e:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
  hostId: `h${i % 3}`, vtep: `192.168.50.${i % 3}`, names: [`n${i}`], ...more,
})

t.test('addresses of both families and MACs pack to bytes and back to canonical text', async (t) => {
  const b = new Uint8Array(32)
  t.equal(packIp('10.1.2.3', b, 0), 4)
  t.equal(unpackIp(4, b, 0), '10.1.2.3')
  t.equal(packIp('FD00:0:0::0:1', b, 16), 6)
  t.equal(unpackIp(6, b, 16), 'fd00::1', 'IPv6 comes back canonical (RFC 5952)')
  t.equal(packIp('255.255.255.255', b, 0), 4)
  t.equal(unpackIp(4, b, 0), '255.255.255.255')
  t.equal(packIp('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', b, 0), 6)
  t.equal(unpackIp(6, b, 0), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')
  t.equal(packIp('::', b, 0), 6)
  t.equal(unpackIp(6, b, 0), '::')
  for (const bad of ['', '10.1.2', '10.1.2.256', 'x', 'fd00:::1', 42, undefined]) t.equal(packIp(bad, b, 0), 0, `refused: ${String(bad)}`)
  t.ok(packMac('02:42:0A:1E:00:FF', b, 0))
  t.equal(unpackMac(b, 0), '02:42:0a:1e:00:ff', 'lower case')
  for (const bad of ['', '02:42:0a:1e:00', '02:42:0a:1e:00:fg', '02-42-0a-1e-00-ff', '02:42:0a:1e:00:fff', 7]) t.notOk(packMac(bad, b, 0), `refused: ${String(bad)}`)
})

t.test('a row comes back as it was set: IPv4, dual-stack, IPv6 endpoint and VTEP, names, an extra field', async (t) => {
  const tb = new EndpointTable()
  const v4 = ep(1)
  const dual = ep(2, { ip6: 'fd00:30::2', names: ['web', 'alias'] })
  const six = { endpointId: 'e6', ip: 'fd00:30::6', mac: '02:42:00:00:00:06', hostId: 'h6', vtep: 'fd00:99::6' }
  const extra = { ...ep(3), ports: [{ proto: 'tcp', port: 80 }] } as ClusterEndpoint
  const nameless = ep(4, { names: [] })
  const unknownNames: ClusterEndpoint = { endpointId: 'e5', ip: '10.30.0.5', mac: '02:42:00:00:00:05', hostId: 'h0', vtep: '192.168.50.0' }
  for (const e of [v4, dual, six, extra, nameless, unknownNames]) t.ok(tb.set(e))
  t.equal(tb.size, 6)
  t.same(tb.get('e1'), v4)
  t.same(tb.get('e2'), dual)
  t.same(tb.get('e6'), six, 'an IPv6 endpoint behind an IPv6 VTEP')
  t.same(tb.get('e3'), extra, 'a field without a column of its own comes back as it came (sparse side map)')
  t.same(tb.get('e4'), nameless, 'no names ([]) stays apart from unknown names')
  t.same(tb.get('e5'), unknownNames)
  t.equal(tb.get('nope'), undefined)
  t.same([...tb.values()].map((e) => e.endpointId).sort(), ['e1', 'e2', 'e3', 'e4', 'e5', 'e6'])
  t.same(tb.slotsWithIp('fd00:30:0::2').map((s) => tb.endpointId(s)), ['e2'], 'found by its IPv6 address, in any spelling')
  t.same(tb.slotsWithMac('02:42:00:00:00:06').map((s) => tb.endpointId(s)), ['e6'])
  t.equal(tb.hostCount, 4, 'hosts interned: one (host id, VTEP) pair each')
})

t.test('records that do not pack are refused and change nothing', async (t) => {
  const tb = new EndpointTable()
  t.ok(tb.set(ep(1)))
  t.notOk(tb.set(ep(1, { ip: 'x' })), 'a bad address')
  t.notOk(tb.set(ep(1, { mac: 'zz' })), 'a bad MAC')
  t.notOk(tb.set(ep(1, { ip6: '10.0.0.300' })), 'a bad second address')
  t.same(tb.get('e1'), ep(1), 'the row as it was')
})

t.test('replace and delete keep the indexes exact; shared addresses and MACs are found together', async (t) => {
  const tb = new EndpointTable()
  tb.set(ep(1))
  tb.set({ ...ep(2), ip: ep(1).ip, mac: ep(1).mac })
  t.same(tb.slotsWithIp(ep(1).ip).map((s) => tb.endpointId(s)).sort(), ['e1', 'e2'])
  t.same(tb.slotsWithMacOf(tb.slot('e1')).map((s) => tb.endpointId(s)).sort(), ['e1', 'e2'])
  tb.set({ ...ep(1), ip: '10.30.9.9' })
  t.same(tb.slotsWithIp(ep(1).ip).map((s) => tb.endpointId(s)), ['e2'], 'a replaced address leaves the index')
  t.equal(tb.slotWithIp('10.30.9.9'), tb.slot('e1'))
  t.ok(tb.delete('e2'))
  t.notOk(tb.delete('e2'))
  t.same(tb.slotsWithIp(ep(1).ip), [])
  t.equal(tb.hostCount, 1, 'a host no row uses any more is released')
  tb.clear()
  t.equal(tb.size, 0)
  t.equal(tb.hostCount, 0)
})

t.test('copyRows: every row of another table as set, without names and other fields; rows of the same id replaced; indexes exact', async (t) => {
  const from = new EndpointTable()
  const dual = ep(2, { ip6: 'fd00:30::2' })
  const six = { endpointId: 'e6', ip: 'fd00:30::6', mac: '02:42:00:00:00:06', hostId: 'h6', vtep: 'fd00:99::6' }
  const extra = { ...ep(3), ports: [{ proto: 'tcp', port: 80 }] } as ClusterEndpoint
  for (const e of [ep(1), dual, six, extra, { ...ep(4), ip: ep(1).ip }]) t.ok(from.set(e))
  from.delete('e3')
  t.ok(from.set(extra), 'a slot freed and taken again')
  const to = new EndpointTable()
  to.set(ep(1, { ip: '10.30.9.9', hostId: 'hx', vtep: '192.168.50.99' }))
  to.set(ep(7))
  to.copyRows(from)
  const bare = ({ names: _n, ports: _p, ...rest }: ClusterEndpoint): ClusterEndpoint => rest
  t.same([...to.values()].sort((a, b) => a.endpointId < b.endpointId ? -1 : 1),
    [ep(1), dual, extra, ep(4, { ip: ep(1).ip }), six].map(bare).concat([ep(7)]).sort((a, b) => a.endpointId < b.endpointId ? -1 : 1))
  t.same(to.slotsWithIp(ep(1).ip).map((s) => to.endpointId(s)).sort(), ['e1', 'e4'], 'a shared address found for both')
  t.same(to.slotsWithIp('10.30.9.9'), [], "the replaced row's address left the index")
  t.same(to.slotsWithIp('fd00:30::2').map((s) => to.endpointId(s)), ['e2'])
  t.same(to.slotsWithMac(six.mac).map((s) => to.endpointId(s)), ['e6'])
  t.equal(to.hostCount, 4, 'hosts interned once each; the replaced row released its own')
  t.same(from.get('e3'), extra, 'the source is left as it was')
})

t.test('copyRows sizes the columns for the rows coming at once (no doubling on the way), indexes exact', async (t) => {
  const from = new EndpointTable()
  for (let i = 0; i < 1000; i++) from.set(i % 10 === 0 ? ep(i, { ip6: `fd00:30::${i.toString(16)}` }) : ep(i))
  t.equal(from.capacity, 1024, 'set alone grows by doubling')
  const to = new EndpointTable()
  to.copyRows(from)
  t.equal(to.capacity, 1000, 'one allocation of exactly the rows copied')
  let bad = 0
  for (const e of from.values()) {
    const s = to.slot(e.endpointId)
    if (to.slotWithIp(e.ip) !== s || (e.ip6 !== undefined && to.slotWithIp(e.ip6) !== s) || !to.slotsWithMac(e.mac).includes(s)) bad++
  }
  t.equal(bad, 0, 'every row found by its addresses and MAC')
})

t.test('at scale: 20,000 rows set, half deleted, slots reused; every lookup agrees with a plain map', async (t) => {
  const tb = new EndpointTable()
  const model = new Map<string, ClusterEndpoint>()
  const N = 20_000
  for (let i = 0; i < N; i++) { const e = i % 5 === 0 ? ep(i, { ip6: `fd00:30::${i.toString(16)}` }) : ep(i); tb.set(e); model.set(e.endpointId, e) }
  for (let i = 0; i < N; i += 2) { tb.delete(`e${i}`); model.delete(`e${i}`) }
  for (let i = N; i < N + 5000; i++) { const e = ep(i); tb.set(e); model.set(e.endpointId, e) }
  t.equal(tb.size, model.size)
  let bad = 0
  for (const e of model.values()) {
    if (!isDeepStrictEqual(tb.get(e.endpointId), e)) bad++
    if (tb.slotWithIp(e.ip) !== tb.slot(e.endpointId)) bad++
    if (e.ip6 !== undefined && tb.slotWithIp(e.ip6) !== tb.slot(e.endpointId)) bad++
    if (!tb.slotsWithMac(e.mac).includes(tb.slot(e.endpointId))) bad++
  }
  for (let i = 0; i < N; i += 2) if (tb.slotWithIp(ep(i).ip) !== -1 || tb.has(`e${i}`)) bad++
  t.equal(bad, 0, 'no lookup disagrees')
})

t.test('HashSlots: colliding hashes, deletes inside a run and across the wrap keep every value findable', async (t) => {
  const hash = (v: number): number => (v % 7 === 0 ? 15 : v % 3)  // many values in one run, some at the last cell (wrap)
  const h = new HashSlots(hash)
  const live = new Set<number>()
  for (let v = 0; v < 200; v++) { h.add(v); live.add(v) }
  for (let v = 0; v < 200; v += 3) { t.equal(h.delete(v), true); live.delete(v) }
  t.equal(h.delete(0), false, 'gone already')
  t.equal(h.size, live.size)
  let missing = 0
  for (const v of live) if (h.find(hash(v), (x) => x === v) !== v) missing++
  for (let v = 0; v < 200; v += 3) if (h.find(hash(v), (x) => x === v) !== -1) missing++
  t.equal(missing, 0)
  t.same(h.all(15, (x) => x % 7 === 0).sort((a, b) => a - b), [...live].filter((v) => v % 7 === 0).sort((a, b) => a - b))
})

/** Per row, its addresses claimed by its own endpoint, counted from the whole list (as PeerSync did before the claims were checked as read). */
function countsOf (tb: EndpointTable, claims: ReadonlyArray<{ ip: string, endpointId: string }>): Uint8Array {
  const last = new Map(claims.map((c) => [c.ip, c.endpointId]))
  const held = new Uint8Array(tb.capacity)
  for (const [ip, id] of last) for (const slot of tb.slotsWithIp(ip)) if (tb.endpointId(slot) === id) held[slot] = (held[slot] ?? 0) + 1
  return held
}

t.test('ClaimMarks: claims checked as rows and claims arrive in any order count as the whole list would', async (t) => {
  const rows = [ep(1), ep(2, { ip6: 'fd00:30::2' }), ep(3), ep(4), ep(5, { ip6: 'fd00:30::5' })]
  const claims = [
    { ip: '10.30.0.1', endpointId: 'e1' },
    { ip: '10.30.0.2', endpointId: 'e2' }, { ip: 'FD00:30:0::2', endpointId: 'e2' }, // another spelling
    { ip: '10.30.0.3', endpointId: 'e9' }, // held by another endpoint
    { ip: '10.30.0.5', endpointId: 'e5' }, // e5's IPv6 address has no claim
    { ip: '10.30.0.77', endpointId: 'e77' }, // no row
  ]
  // Every interleaving of rows and claims (in their own order) that a paged read of the two hashes could give, and some more.
  for (let seed = 0; seed < 200; seed++) {
    const marks = new ClaimMarks(new EndpointTable())
    let r = 0
    let c = 0
    let x = seed * 7919 + 1
    while (r < rows.length || c < claims.length) {
      x = (x * 1103515245 + 12345) % 2147483648
      if (c >= claims.length || (r < rows.length && x % 2 === 0)) t.ok(marks.set(rows[r++]!))
      else { const cl = claims[c++]!; marks.claim(cl.ip, cl.endpointId) }
    }
    const tb = marks.table
    const want = countsOf(tb, claims)
    if (!isDeepStrictEqual(marks.counts(), want)) { t.same(marks.counts(), want, `seed ${seed}`); return }
    const got = [...marks.claims()].sort((a, b) => a.ip < b.ip ? -1 : 1)
    if (!isDeepStrictEqual(got, [
      { ip: '10.30.0.1', endpointId: 'e1' }, { ip: '10.30.0.2', endpointId: 'e2' }, { ip: '10.30.0.3', endpointId: 'e9' },
      { ip: '10.30.0.5', endpointId: 'e5' }, { ip: '10.30.0.77', endpointId: 'e77' }, { ip: 'fd00:30::2', endpointId: 'e2' },
    ])) { t.same(got, [], `claims, seed ${seed}`); return }
  }
  const marks = new ClaimMarks(new EndpointTable())
  for (const e of rows) marks.set(e)
  for (const c of claims) marks.claim(c.ip, c.endpointId)
  const tb = marks.table
  t.same([...tb.slots()].map((s) => [tb.endpointId(s), marks.counts()[s]]), [['e1', 1], ['e2', 2], ['e3', 0], ['e4', 0], ['e5', 1]], 'counts per row')
  t.same([...marks.unmatched], [['10.30.0.3', 'e9'], ['10.30.0.77', 'e77']], 'only the claims no row took are kept apart')
})

t.test('ClaimMarks: a row read again (a page repeating it) gives back the claims it had and takes them again at its new addresses', async (t) => {
  const marks = new ClaimMarks(new EndpointTable())
  marks.set(ep(2, { ip6: 'fd00:30::2' }))
  marks.claim('10.30.0.2', 'e2')
  marks.claim('fd00:30::2', 'e2')
  marks.set(ep(2, { ip6: 'fd00:30::2' }))
  t.equal(marks.counts()[marks.table.slot('e2')], 2, 'the same row again: both claims kept')
  marks.set(ep(2, { ip: '10.30.0.9' }))
  t.equal(marks.counts()[marks.table.slot('e2')], 0, 'moved to addresses it has no claim of')
  t.same([...marks.unmatched].sort(), [['10.30.0.2', 'e2'], ['fd00:30::2', 'e2']], 'its old claims wait again')
  t.notOk(marks.set(ep(2, { ip: 'x' })), 'a copy that does not pack is refused')
  marks.set(ep(2, { ip6: 'fd00:30::2' }))
  t.equal(marks.counts()[marks.table.slot('e2')], 2, 'back at its claimed addresses: taken again')
  t.equal(marks.unmatched.size, 0)
})
