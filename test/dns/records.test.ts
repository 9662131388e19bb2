import t from 'tap'
import { isEncodableName, normalizeName, RecordSet, StaticRecordSource, type RecordEntry } from '../../src/dns/records.js'
import { reverseName } from '../../src/util/ip.js'
import { encodeRRSet, keyToName, TYPE_A, wireKey } from '../../src/dns/wire.js'
import { AnswerCache, rrsFor } from '../../src/dns/answers.js'
import { mulberry32 } from '../harness/random.js'

const entries: RecordEntry[] = [
  { network: 'n1', name: 'web', aliases: ['frontend', 'a1b2c3d4e5f6'], ip: '10.1.0.2' },
  { network: 'n1', name: 'db', aliases: ['Postgres'], ip: '10.1.0.3', ip6: 'fd00:1::3' },
  { network: 'n2', name: 'web', aliases: [], ip: '10.2.0.2' },
  { network: 'n2', name: 'cache', aliases: ['shared'], ip: '10.2.0.4' },
  { network: 'n2', name: 'cache2', aliases: ['shared'], ip: '10.2.0.5' },
  { network: 'n3', name: 'v6only', aliases: [], ip: 'fd00:3::7' },
]

t.test('names are normalized: case, trailing dot', async (t) => {
  t.equal(normalizeName('Web.Example.'), 'web.example')
  t.equal(normalizeName('.'), '')
  t.ok(isEncodableName('my_app-1.x'))
  t.notOk(isEncodableName(''))
  t.notOk(isEncodableName('a..b'))
  t.notOk(isEncodableName('x'.repeat(64)))
  t.notOk(isEncodableName('has space'))
  t.notOk(isEncodableName(`${'a'.repeat(60)}.`.repeat(5)))
})

t.test('reverse names, IPv4 and IPv6', async (t) => {
  t.equal(reverseName('10.1.0.2'), '2.0.1.10.in-addr.arpa')
  t.equal(reverseName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa')
  t.throws(() => reverseName('nope'))
})

t.test('A records by name, alias and short id, scoped by network', async (t) => {
  const rs = RecordSet.from(entries)
  t.same(rs.resolve('web', 'A', ['n1']), [{ name: 'web', type: 'A', data: '10.1.0.2' }])
  t.same(rs.resolve('WEB.', 'A', ['n1']), [{ name: 'web', type: 'A', data: '10.1.0.2' }], 'case and trailing dot ignored')
  t.same(rs.resolve('frontend', 'A', ['n1']), [{ name: 'frontend', type: 'A', data: '10.1.0.2' }])
  t.same(rs.resolve('a1b2c3d4e5f6', 'a', ['n1'])?.map((a) => a.data), ['10.1.0.2'])
  t.same(rs.resolve('postgres', 'A', ['n1'])?.map((a) => a.data), ['10.1.0.3'], 'aliases are case-insensitive too')
  t.equal(rs.resolve('frontend', 'A', ['n2']), undefined, 'an alias of n1 is unknown on n2')
  t.equal(rs.resolve('web', 'A', []), undefined, 'no networks, no names')
  t.same(rs.resolve('web', 'A', ['n2'])?.map((a) => a.data), ['10.2.0.2'])
  t.same(rs.resolve('web', 'A', ['n1', 'n2'])?.map((a) => a.data), ['10.1.0.2', '10.2.0.2'], 'a client on two networks sees both')
  t.same(rs.resolve('shared', 'A', ['n2'])?.map((a) => a.data), ['10.2.0.4', '10.2.0.5'], 'an alias shared by two containers')
  t.equal(rs.resolve('example.com', 'A', ['n1', 'n2']), undefined, 'unknown names are not ours')
})

t.test('AAAA, NODATA and ANY', async (t) => {
  const rs = RecordSet.from(entries)
  t.same(rs.resolve('db', 'AAAA', ['n1']), [{ name: 'db', type: 'AAAA', data: 'fd00:1::3' }])
  t.same(rs.resolve('web', 'AAAA', ['n1']), [], 'known name, no IPv6: NODATA, not forwarded')
  t.same(rs.resolve('web', 'MX', ['n1']), [], 'other types: NODATA')
  t.same(rs.resolve('v6only', 'AAAA', ['n3'])?.map((a) => a.data), ['fd00:3::7'])
  t.same(rs.resolve('v6only', 'A', ['n3']), [])
  t.same(rs.resolve('db', 'ANY', ['n1'])?.map((a) => a.type), ['A', 'AAAA'])
})

t.test('PTR answers the container name, in scope only', async (t) => {
  const rs = RecordSet.from(entries)
  t.same(rs.resolve('2.0.1.10.in-addr.arpa', 'PTR', ['n1']), [{ name: '2.0.1.10.in-addr.arpa', type: 'PTR', data: 'web' }])
  t.same(rs.resolve('3.0.1.10.IN-ADDR.ARPA.', 'PTR', ['n1'])?.map((a) => a.data), ['db'])
  t.equal(rs.resolve('2.0.1.10.in-addr.arpa', 'PTR', ['n2']), undefined)
  t.same(rs.resolve(reverseName('fd00:1::3'), 'PTR', ['n1'])?.map((a) => a.data), ['db'])
  t.same(rs.resolve('2.0.1.10.in-addr.arpa', 'A', ['n1']), [], 'a reverse name is ours for every type')
})

t.test('invalid entries are skipped, not fatal', async (t) => {
  const rs = RecordSet.from([
    { network: 'n', name: 'bad name', aliases: ['ok'], ip: '10.0.0.9' },
    { network: 'n', name: 'good', aliases: ['x'.repeat(70), 'fine'], ip: 'not-an-ip' },
    { network: 'n', name: 'ok2', aliases: ['x'.repeat(70)], ip: '10.0.0.8' },
  ])
  t.same(rs.resolve('ok', 'A', ['n'])?.map((a) => a.data), ['10.0.0.9'], 'an unusable name is left out, its aliases still answer')
  t.same(rs.resolve('9.0.0.10.in-addr.arpa', 'PTR', ['n'])?.map((a) => a.data), ['ok'], 'and the first usable one answers PTR')
  t.equal(RecordSet.from([{ network: 'n', name: 'x'.repeat(64), aliases: [], ip: '10.0.0.7' }]).resolve('7.0.0.10.in-addr.arpa', 'PTR', ['n']), undefined,
    'no usable name at all: no records')
  t.equal(rs.resolve('good', 'A', ['n']), undefined, 'no usable address: no records')
  t.same(rs.resolve('ok2', 'A', ['n'])?.map((a) => a.data), ['10.0.0.8'])
})

t.test('list, networks', async (t) => {
  const rs = RecordSet.from(entries)
  t.same(rs.networks(), ['n1', 'n2', 'n3'])
  t.same(rs.list('n2').map((r) => `${r.name} ${r.type} ${r.data}`), [
    '2.0.2.10.in-addr.arpa PTR web',
    '4.0.2.10.in-addr.arpa PTR cache',
    '5.0.2.10.in-addr.arpa PTR cache2',
    'cache A 10.2.0.4',
    'cache2 A 10.2.0.5',
    'shared A 10.2.0.4',
    'shared A 10.2.0.5',
    'web A 10.2.0.2',
  ])
  t.equal(rs.list().length, rs.list('n1').length + rs.list('n2').length + rs.list('n3').length)
  t.same(RecordSet.empty().list(), [])
})

t.test('StaticRecordSource emits change', async (t) => {
  const src = new StaticRecordSource(entries.slice(0, 1))
  let changes = 0
  const onChange = (): void => { changes++ }
  src.on('change', onChange)
  src.add(entries[1]!)
  t.equal(src.records().length, 2)
  src.remove((e) => e.name === 'web')
  t.same(src.records().map((e) => e.name), ['db'])
  src.set([])
  t.equal(changes, 3)
  src.off('change', onChange)
  src.set(entries)
  t.equal(changes, 3)
})

t.test('wire keys and precomputed answers', async (t) => {
  t.equal(keyToName(wireKey('Web.Example.')), 'web.example')
  t.equal(wireKey('ab.c'), '\x02ab\x01c')
  const rrs = encodeRRSet(TYPE_A, 5, ['10.0.0.1', '10.0.0.2'])
  t.equal(rrs.count, 2)
  t.equal(rrs.bytes.length, 32)
  t.same([...rrs.bytes.subarray(0, 16)], [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1])
  const cache = new AnswerCache(RecordSet.from(entries), 0)
  const nets = ['n1']
  const view = cache.view(nets)
  t.equal(cache.view(nets), view, 'same array, same view')
  t.equal(cache.view(['n1']), view, 'same content, same view')
  t.not(cache.view(['n1', 'n2']), view)
  t.equal(cache.view(['n2', 'n1']), cache.view(['n1', 'n2']), 'order does not matter')
  const e = view.get(wireKey('web'))!
  t.equal(rrsFor(e, TYPE_A).count, 1)
  t.equal(rrsFor(e, 28).count, 0)
  t.equal(rrsFor(e, 255).count, 1)
  t.equal(view.get(wireKey('web')), e, 'cached')
  t.equal(view.get(wireKey('nope')), undefined)
  t.equal(view.get(wireKey('nope')), undefined, 'negative is cached too')
})

t.test('a RecordSet changed entry by entry equals one built from the final entries', async (t) => {
  const rand = mulberry32(16)
  const pool: RecordEntry[] = [
    ...entries,
    { network: 'n1', name: 'web2', aliases: ['frontend'], ip: '10.1.0.2' },   // the same alias and address as web
    { network: 'n1', name: 'web', aliases: [], ip: '10.1.0.9' },
    { network: 'overlay:o', name: 'x', aliases: ['y'], ip: '10.9.0.2' },
    { network: 'overlay:o', name: 'x', aliases: ['y'], ip: '10.9.0.3' },
    { network: 'n1', name: 'svc', aliases: ['frontend'], ip: '10.1.0.7', ports: [{ proto: 'tcp', port: 80 }, { proto: 'udp', port: 53 }] },
    { network: 'n1', name: 'svc2', aliases: ['frontend'], ip: '10.1.0.8', ports: [{ proto: 'tcp', port: 80 }] },
  ]
  for (let run = 0; run < 30; run++) {
    const set = RecordSet.empty()
    const have: RecordEntry[] = []
    for (let step = 0; step < 40; step++) {
      if (have.length > 0 && rand() < 0.4) {
        const [gone] = have.splice(Math.floor(rand() * have.length), 1)
        set.remove(gone!)
      } else {
        const e = pool[Math.floor(rand() * pool.length)]!
        have.push(e)
        set.add(e)
      }
      if (JSON.stringify(set.list()) !== JSON.stringify(RecordSet.from(have).list()) || JSON.stringify(set.networks()) !== JSON.stringify(RecordSet.from(have).networks())) {
        t.fail(`run ${run} step ${step}: the patched set differs from a rebuilt one`)
        return
      }
    }
  }
  const set = RecordSet.from([pool[0]!, pool[6]!])
  set.remove(pool[0]!)
  t.same(set.lookup('frontend', ['n1'])?.a, ['10.1.0.2'], 'an address two entries give stays while one of them does')
  set.remove(pool[0]!)
  t.same(set.lookup('web2', ['n1'])?.a, ['10.1.0.2'], 'removing an entry that is not there changes nothing')
  set.remove(pool[6]!)
  t.equal(set.lookup('frontend', ['n1']), undefined)
  t.same(set.networks(), [])
})

t.test('SRV: each published port under the name and every alias, target the container name, scoped', async (t) => {
  const set = RecordSet.from([
    { network: 'n1', name: 'web', aliases: ['frontend'], ip: '10.1.0.2', ports: [{ proto: 'tcp', port: 80 }, { proto: 'tcp', port: 80 }, { proto: 'udp', port: 53 }] },
    { network: 'n1', name: 'web2', aliases: ['frontend'], ip: '10.1.0.3', ports: [{ proto: 'tcp', port: 80 }] },
    { network: 'n2', name: 'api', aliases: [], ip: '10.2.0.2', ports: [{ proto: 'tcp', port: 0 }, { proto: 'sctp' as 'tcp', port: 9 }, { proto: 'tcp', port: 1.5 }] },
  ])
  t.same(set.resolve('_80._tcp.web', 'SRV', ['n1']), [{ name: '_80._tcp.web', type: 'SRV', data: '80 web' }], 'a duplicate port counts once')
  t.same(set.resolve('_53._udp.WEB.', 'SRV', ['n1']), [{ name: '_53._udp.web', type: 'SRV', data: '53 web' }])
  t.same(set.resolve('_80._tcp.frontend', 'SRV', ['n1'])?.map((a) => a.data).sort(), ['80 web', '80 web2'], 'an alias of two containers: both')
  t.same(set.resolve('_80._tcp.web', 'A', ['n1']), [], 'the SRV name exists: other types are NODATA')
  t.equal(set.resolve('_80._tcp.web', 'SRV', ['n2']), undefined, 'another network sees nothing')
  t.equal(set.resolve('_53._tcp.web', 'SRV', ['n1']), undefined, 'a port published over UDP only')
  t.same(set.list('n2').map((r) => r.type).sort(), ['A', 'PTR'], 'invalid ports (0, sctp, not whole) are skipped')
  const many = RecordSet.from([{ network: 'n1', name: 'r', aliases: [], ip: '10.1.0.9', ports: Array.from({ length: 100 }, (_, i) => ({ proto: 'tcp' as const, port: 1000 + i })) }])
  t.equal(many.list().filter((r) => r.type === 'SRV').length, 64, 'at most 64 ports per entry')
  set.remove({ network: 'n1', name: 'web2', aliases: ['frontend'], ip: '10.1.0.3', ports: [{ proto: 'tcp', port: 80 }] })
  t.same(set.resolve('_80._tcp.frontend', 'SRV', ['n1'])?.map((a) => a.data), ['80 web'], 'removed with its entry')
})
