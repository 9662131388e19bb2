import t from 'tap'
import { readChange } from '../../src/cluster/validate.js'
import { parseClusterUrl, parseSwitchMaster, redact } from '../../src/cluster/url.js'
import { mapRedisError, parseChange, redisOptions, retryDelay } from '../../src/cluster/redis.js'

t.test('redis://', async (t) => {
  t.same(parseClusterUrl('redis://10.0.0.5:6379'), { target: { kind: 'standalone', host: '10.0.0.5', port: 6379 }, db: 0, waitReplicas: 0, redacted: 'redis://10.0.0.5:6379' })
  t.same(parseClusterUrl('redis://redis.example'), { target: { kind: 'standalone', host: 'redis.example', port: 6379 }, db: 0, waitReplicas: 0, redacted: 'redis://redis.example' })
  t.same(parseClusterUrl('redis://:p%40ss@10.0.0.5/3'), {
    target: { kind: 'standalone', host: '10.0.0.5', port: 6379 }, db: 3, waitReplicas: 0, password: 'p@ss', redacted: 'redis://:***@10.0.0.5/3',
  })
  t.same(parseClusterUrl('redis://ferry:pw@[::1]:7000'), {
    target: { kind: 'standalone', host: '::1', port: 7000 }, db: 0, waitReplicas: 0, username: 'ferry', password: 'pw', redacted: 'redis://ferry:***@[::1]:7000',
  })
})

t.test('rediss:// (TLS)', async (t) => {
  t.same(parseClusterUrl('rediss://:pw@redis.example:6380'), {
    target: { kind: 'standalone', host: 'redis.example', port: 6380 }, db: 0, waitReplicas: 0, password: 'pw', tls: { servername: 'redis.example' }, redacted: 'rediss://:***@redis.example:6380',
  })
  t.same(parseClusterUrl('rediss://10.0.0.5?ca=/etc/ferry/ca.pem&servername=redis.internal').tls, { servername: 'redis.internal', caFile: '/etc/ferry/ca.pem' })
  const opts = redisOptions(parseClusterUrl('rediss://:pw@redis.example:6380'), { hostId: 'h1', commandTimeoutMs: 1, connectTimeoutMs: 2 })
  t.match(opts, { host: 'redis.example', port: 6380, password: 'pw', tls: { servername: 'redis.example' }, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectionName: 'ferry-h1' })
  t.throws(() => redisOptions(parseClusterUrl('rediss://h?ca=/nonexistent/ca.pem'), { hostId: 'h1', commandTimeoutMs: 1, connectTimeoutMs: 2 }),
    { code: 'INVALID_OPTION', message: /cannot read the cluster CA file \/nonexistent\/ca.pem/ })
})

t.test('sentinel://', async (t) => {
  t.same(parseClusterUrl('sentinel://:pw@10.0.0.5:26379,10.0.0.6:26380,10.0.0.7/mymaster'), {
    target: { kind: 'sentinel', masterName: 'mymaster', sentinels: [{ host: '10.0.0.5', port: 26379 }, { host: '10.0.0.6', port: 26380 }, { host: '10.0.0.7', port: 26379 }] },
    db: 0, waitReplicas: 0, password: 'pw', redacted: 'sentinel://:***@10.0.0.5:26379,10.0.0.6:26380,10.0.0.7/mymaster',
  })
  t.same(parseClusterUrl('sentinel://s1:26379/m?tls=true').tls, {})
  const opts = redisOptions(parseClusterUrl('sentinel://:pw@s1:26379/m'), { hostId: 'h1', commandTimeoutMs: 1, connectTimeoutMs: 2 })
  t.match(opts, { sentinels: [{ host: 's1', port: 26379 }], name: 'm', password: 'pw', sentinelPassword: 'pw' })
  t.equal(opts.host, undefined)
})

t.test('IPv6 hosts (issue #15): in brackets, in every scheme, down to the options ioredis gets', async (t) => {
  const v6 = parseClusterUrl('redis://[fd00::1]:6379/0')
  t.same(v6, { target: { kind: 'standalone', host: 'fd00::1', port: 6379 }, db: 0, waitReplicas: 0, redacted: 'redis://[fd00::1]:6379/0' })
  t.same(parseClusterUrl('redis://[2001:db8::7]').target, { kind: 'standalone', host: '2001:db8::7', port: 6379 }, 'the default port')
  t.same(parseClusterUrl('redis://[::ffff:10.0.0.5]:7000/2?wait=1'), {
    target: { kind: 'standalone', host: '::ffff:10.0.0.5', port: 7000 }, db: 2, waitReplicas: 1, redacted: 'redis://[::ffff:10.0.0.5]:7000/2?wait=1',
  }, 'an IPv4-mapped address')
  const tls = parseClusterUrl('rediss://ferry:pw@[fd00::1]:6380/1?ca=/etc/ferry/ca.pem')
  t.same(tls, {
    target: { kind: 'standalone', host: 'fd00::1', port: 6380 }, db: 1, waitReplicas: 0, username: 'ferry', password: 'pw',
    tls: { servername: 'fd00::1', caFile: '/etc/ferry/ca.pem' }, redacted: 'rediss://ferry:***@[fd00::1]:6380/1?ca=/etc/ferry/ca.pem',
  })
  t.same(parseClusterUrl('rediss://[fd00::1]?servername=redis.internal').tls, { servername: 'redis.internal' })
  const sentinel = parseClusterUrl('sentinel://:pw@[fd00::5]:26379,[fd00::6],10.0.0.7:26380/mymaster?tls=true&wait=1')
  t.same(sentinel, {
    target: { kind: 'sentinel', masterName: 'mymaster', sentinels: [{ host: 'fd00::5', port: 26379 }, { host: 'fd00::6', port: 26379 }, { host: '10.0.0.7', port: 26380 }] },
    db: 0, waitReplicas: 1, password: 'pw', tls: {}, redacted: 'sentinel://:***@[fd00::5]:26379,[fd00::6],10.0.0.7:26380/mymaster?tls=true&wait=1',
  }, 'IPv6 and IPv4 sentinels side by side, the default sentinel port for the bare [fd00::6]')
  // ioredis takes the bare address (net.connect), never the bracketed form.
  const o = { hostId: 'h1', commandTimeoutMs: 1, connectTimeoutMs: 2 }
  t.match(redisOptions(v6, o), { host: 'fd00::1', port: 6379, db: 0 })
  t.match(redisOptions(parseClusterUrl('rediss://ferry:pw@[fd00::1]:6380/1'), o), { host: 'fd00::1', port: 6380, db: 1, username: 'ferry', password: 'pw', tls: { servername: 'fd00::1' } })
  t.same(redisOptions(sentinel, o).sentinels, [{ host: 'fd00::5', port: 26379 }, { host: 'fd00::6', port: 26379 }, { host: '10.0.0.7', port: 26380 }])
  const cases: Array<[string, RegExp]> = [
    ['redis://fd00::1:6379', /an IPv6 address goes in brackets: \[fd00::1:6379\]/],
    ['redis://fd00::1', /an IPv6 address goes in brackets/],
    ['sentinel://[fd00::5]:26379,fd00::6/m', /an IPv6 address goes in brackets: \[fd00::6\]/],
    ['redis://[fd00::1', /is not a host name or address/],
    ['redis://[1:2]:6379', /"\[1:2\]" is not a host name or address/],
    ['redis://[10.0.0.5]:6379', /"\[10.0.0.5\]" is not a host name or address/],
    ['redis://[fd00::1]:http', /port "http"/],
    ['redis://[]:6379', /is not a host name or address/],
  ]
  for (const [url, msg] of cases) t.throws(() => parseClusterUrl(url), { code: 'INVALID_OPTION', message: msg }, url)
})

t.test('mistakes get a sentence', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['10.0.0.5:6379', /expected redis:\/\/HOST:PORT/],
    ['http://10.0.0.5', /scheme "http:\/\/" is not supported/],
    ['redis://', /a host is missing/],
    ['redis://10.0.0.5:99999', /port "99999" must be a number from 1 to 65535/],
    ['redis://10.0.0.5:x', /port "x"/],
    ['redis://10.0.0.5/db', /database "db"/],
    ['redis://a,b', /takes one host/],
    ['redis://h?ca=x', /parameter "ca" is not understood \(use wait\)/],
    ['rediss://h?foo=1', /parameter "foo" is not understood \(use ca, servername, wait\)/],
    ['rediss://h?ca=', /needs a file path/],
    ['sentinel://s1:26379', /master name is missing/],
    ['sentinel:///m', /at least one sentinel/],
    ['sentinel://s1:26379/bad name', /master name "bad name"/],
    ['sentinel://s1:26379/m?tls=maybe', /tls must be true or false/],
    ['redis://bad_host!:1', /is not a host name or address/],
    ['redis://:%zz@h', /password is not valid percent-encoding/],
  ]
  for (const [url, msg] of cases) t.throws(() => parseClusterUrl(url), { code: 'INVALID_OPTION', message: msg }, url)
  t.match(t.throws(() => parseClusterUrl('redis://:hunter2@h:0')) as Error, { message: /redis:\/\/:\*\*\*@h:0/ }, 'never echo a password')
  t.equal(redact('redis://u:p@h'), 'redis://u:***@h')
  t.equal(redact('redis://h'), 'redis://h')
})

t.test('redis errors become FerryErrors', async (t) => {
  t.match(mapRedisError(new Error('NAME_CONFLICT overlay ov1 already exists script: 0123abcd, on @user_script:1.'), 'x'),
    { code: 'NAME_CONFLICT', message: 'overlay ov1 already exists' })
  t.match(mapRedisError(new Error('Connection is closed.'), 'redis://h (publish)'), { code: 'CLUSTER_UNAVAILABLE', message: 'the cluster store redis://h (publish) failed: Connection is closed.' })
  t.match(mapRedisError(new Error('ERR user_script:3: Script attempted to access nonexistent global variable'), 'x'), { code: 'INTERNAL' })
  t.match(mapRedisError(new Error('CLUSTER_UNAVAILABLE forged'), 'x'), { code: 'CLUSTER_UNAVAILABLE', message: /failed: CLUSTER_UNAVAILABLE forged/ })
})

t.test('change messages and retry delays', async (t) => {
  // The backend only parses; the client checks every message with readChange (test/cluster/redis.forged.test.ts tries them all).
  t.same(readChange(parseChange('{"rev":5,"kind":"host-removed","hostId":"h2"}')), { ok: true, value: { kind: 'host-removed', rev: 5, hostId: 'h2' } })
  t.match(readChange(parseChange('{"rev":5,"kind":"other"}')), { ok: false, reason: 'invalid' })
  t.match(readChange(parseChange('{"kind":"host-removed"}')), { ok: false, reason: 'revision' })
  t.match(readChange(parseChange('not json')), { ok: false, reason: 'invalid' })
  t.match(readChange(parseChange('x'.repeat(40_000))), { ok: false, reason: 'invalid' })
  // Equal jitter: between half and all of 100, 200, 400, 800, then 1000 ms forever.
  t.same([1, 2, 3, 4, 5, 50].map((a) => retryDelay(a, () => 1)), [100, 200, 400, 800, 1000, 1000])
  t.same([1, 2, 3, 4, 5, 50].map((a) => retryDelay(a, () => 0)), [50, 100, 200, 400, 500, 500])
  t.same([0, 1].map((a) => retryDelay(a, () => 0.5)), [75, 75], 'the first retry too')
  const spread = new Set(Array.from({ length: 200 }, () => retryDelay(9)))
  t.ok(spread.size > 50 && [...spread].every((d) => d >= 500 && d <= 1000), 'a thousand agents reconnecting at once are spread over half a second')
})

t.test('wait=N: changes wait for N replicas', async (t) => {
  t.equal(parseClusterUrl('sentinel://10.0.0.5:26379/ferry?wait=1').waitReplicas, 1)
  t.equal(parseClusterUrl('redis://10.0.0.5?wait=2').waitReplicas, 2)
  t.equal(parseClusterUrl('rediss://10.0.0.5?ca=/x.pem&wait=1').waitReplicas, 1)
  t.equal(parseClusterUrl('sentinel://10.0.0.5:26379/ferry?tls=true').waitReplicas, 0)
  t.throws(() => parseClusterUrl('redis://10.0.0.5?wait=x'), { code: 'INVALID_OPTION', message: /wait must be a number of replicas/ })
  t.throws(() => parseClusterUrl('redis://10.0.0.5?wait=10'), { code: 'INVALID_OPTION' })
})

t.test('parseSwitchMaster: a sentinel\'s +switch-master of the named master only', async (t) => {
  t.same(parseSwitchMaster('fy 192.0.2.5 6381 192.0.2.6 6382', 'fy'), { from: { host: '192.0.2.5', port: 6381 }, to: { host: '192.0.2.6', port: 6382 } })
  t.same(parseSwitchMaster(' fy fd00::5 6379 redis-b.internal 6379\r\n', 'fy'), { from: { host: 'fd00::5', port: 6379 }, to: { host: 'redis-b.internal', port: 6379 } })
  for (const m of ['', 'fy', 'other 10.0.0.1 1 10.0.0.2 2', 'fy 10.0.0.1 1 10.0.0.2', 'fy 10.0.0.1 1 10.0.0.2 2 3', 'fy 10.0.0.1 0 10.0.0.2 2',
    'fy 10.0.0.1 1 10.0.0.2 65536', 'fy 10.0.0.1 x 10.0.0.2 2', 'fy a/b 1 10.0.0.2 2', `fy ${'a'.repeat(254)} 1 10.0.0.2 2`]) {
    t.equal(parseSwitchMaster(m, 'fy'), undefined, JSON.stringify(m).slice(0, 60))
  }
})
