import t from 'tap'
import { MAX_SEARCH_DOMAINS, parseResolvSearch, SearchDomains } from '../../src/dns/search.js'
import { RecordSet, type RecordEntry } from '../../src/dns/records.js'
import { AnswerCache, rrsFor } from '../../src/dns/answers.js'
import { keyToName, TYPE_A, TYPE_SRV, wireKey } from '../../src/dns/wire.js'

const names = (s: SearchDomains, name: string): string[] => s.stripped(wireKey(name)).map(keyToName)

t.test('a name is stripped of each search domain it ends with, at label boundaries only', async (t) => {
  const s = new SearchDomains(['Example.COM.', 'svc.example.com', 'corp'])
  t.same(s.domains, ['example.com', 'svc.example.com', 'corp'], 'normalized, in order')
  t.same(names(s, 'web.example.com'), ['web'])
  t.same(names(s, 'WEB.Example.Com.'), ['web'], 'case and trailing dot do not matter')
  t.same(names(s, 'web.svc.example.com'), ['web', 'web.svc'], 'shortest name first')
  t.same(names(s, 'my.app.corp'), ['my.app'])
  t.same(names(s, 'example.com'), [], 'the domain itself strips to nothing')
  t.same(names(s, 'webexample.com'), [], 'not a label boundary')
  t.same(names(s, 'web.notexample.com'), [])
  t.same(names(s, 'web'), [])
  t.same(names(s, 'web.example.com.evil'), [], 'a suffix only')
  // A label that holds the bytes of a suffix key must not match inside itself.
  // The one label `a\x07example`, then `com`: its key ends with the key of example.com.
  t.same(s.stripped('\x09a\x07example\x03com'), [], 'a length octet inside a label is not a boundary')
})

t.test('bad domains, repeats and too many are left out', async (t) => {
  t.same(new SearchDomains(['', '.', 'a..b', 'x'.repeat(64), 'ok', 'OK.', 'has space']).domains, ['ok'])
  t.equal(new SearchDomains(Array.from({ length: 40 }, (_, i) => `d${i}.test`)).size, MAX_SEARCH_DOMAINS)
  t.equal(SearchDomains.none.size, 0)
  t.same(SearchDomains.none.stripped(wireKey('web.example.com')), [])
  t.ok(new SearchDomains(['a', 'b']).same(new SearchDomains(['A.', 'b'])))
  t.notOk(new SearchDomains(['a', 'b']).same(new SearchDomains(['b', 'a'])))
})

t.test('the search list of a resolv.conf: the last search or domain line', async (t) => {
  t.same(parseResolvSearch('nameserver 10.0.0.1\nsearch corp.example  example.com\noptions ndots:2\n'), ['corp.example', 'example.com'])
  t.same(parseResolvSearch('search a.test\ndomain b.test # comment\n'), ['b.test'])
  t.same(parseResolvSearch('# search commented.out\nnameserver 1.1.1.1\n'), [])
  t.same(parseResolvSearch('search\n'), [])
})

const entries: RecordEntry[] = [
  { network: 'n1', name: 'web', aliases: ['front'], ip: '10.1.0.2', ports: [{ proto: 'tcp', port: 80 }] },
  { network: 'n2', name: 'db', aliases: [], ip: '10.2.0.3' },
]

t.test('answers: NAME.<search domain> gets NAME\'s records in the scope, and only there', async (t) => {
  const search = new SearchDomains(['example.com'])
  const cache = new AnswerCache(RecordSet.from(entries), 5, search)
  const n1 = cache.view(['n1'])
  const e = n1.get(wireKey('web.example.com'))
  t.ok(e, 'answered')
  t.equal(rrsFor(e!, TYPE_A).count, 1)
  t.same(rrsFor(e!, TYPE_A).bytes, rrsFor(n1.get(wireKey('web'))!, TYPE_A).bytes, 'the same records as the short name (owner: the question)')
  t.ok(n1.get(wireKey('front.example.com')), 'an alias too')
  t.equal(rrsFor(n1.get(wireKey('_80._tcp.web.example.com'))!, TYPE_SRV).count, 1, 'SRV of a published port too')
  t.ok(n1.unknownService(wireKey('_81._tcp.web.example.com')), 'an unpublished service of a ferry name is ferry\'s NXDOMAIN')
  t.equal(n1.get(wireKey('db.example.com')), undefined, 'a name of another network is not ferry\'s here: forwarded')
  t.equal(n1.get(wireKey('web.other.org')), undefined, 'not a search domain')
  t.equal(n1.get(wireKey('mail.example.com')), undefined, 'not a ferry name')
  t.ok(cache.view(['n2']).get(wireKey('db.example.com')))
  t.equal(new AnswerCache(RecordSet.from(entries), 5).view(['n1']).get(wireKey('web.example.com')), undefined, 'no search list, no expansion')
})
