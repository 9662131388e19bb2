import t from 'tap'
import { mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkToken, isLoopback, metricsConfig, parseMetricsListen, readTokenFile } from '../../src/metrics/config.js'

t.test('listen addresses', async (t) => {
  t.same(parseMetricsListen('127.0.0.1:9323'), { host: '127.0.0.1', port: 9323 })
  t.same(parseMetricsListen('[::1]:9323'), { host: '::1', port: 9323 })
  t.same(parseMetricsListen('localhost:9323'), { host: '127.0.0.1', port: 9323 })
  t.same(parseMetricsListen('0.0.0.0:1'), { host: '0.0.0.0', port: 1 })
  for (const bad of ['9323', ':9323', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '300.0.0.1:80', 'example.com:80', '[::1:80', '127.0.0.1:80; rm -rf /', '']) {
    t.throws(() => parseMetricsListen(bad), { code: 'INVALID_OPTION' }, bad)
  }
})

t.test('loopback', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) t.ok(isLoopback(h), h)
  for (const h of ['0.0.0.0', '10.0.0.1', '::', '128.0.0.1', 'localhost']) t.notOk(isLoopback(h), h)
})

t.test('no listener unless asked; non-loopback only with a token', async (t) => {
  t.equal(metricsConfig({}), undefined)
  t.throws(() => metricsConfig({ metricsToken: '/x' }), { code: 'INVALID_OPTION' })
  t.same(metricsConfig({ metricsListen: '127.0.0.1:9323' }), { listen: { host: '127.0.0.1', port: 9323 } })
  t.throws(() => metricsConfig({ metricsListen: '0.0.0.0:9323' }), { code: 'INVALID_OPTION', message: /needs --metrics-token/ })
  t.throws(() => metricsConfig({ metricsListen: '10.1.2.3:9323' }), { code: 'INVALID_OPTION' })
  t.same(metricsConfig({ metricsListen: '0.0.0.0:9323', metricsToken: '/etc/ferry/token' }), { listen: { host: '0.0.0.0', port: 9323 }, tokenFile: '/etc/ferry/token' })
})

t.test('token files', async (t) => {
  const good = 'a'.repeat(32)
  t.equal(checkToken('f', `${good}\n`, 0o100600), good)
  t.equal(checkToken('f', `  ${good}  \nsecond line`, 0o100400), good)
  t.throws(() => checkToken('f', good, 0o100644), { message: /readable by others/ })
  t.throws(() => checkToken('f', good, 0o100640), { message: /readable by others/ })
  t.throws(() => checkToken('f', 'short', 0o100600), { message: /at least 16/ })
  t.throws(() => checkToken('f', '\n' + good, 0o100600), { message: /first line/ })
  t.throws(() => checkToken('f', 'a b c d e f g h i j k', 0o100600))

  const dir = mkdtempSync(join(tmpdir(), 'fymt-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'token')
  writeFileSync(file, good + '\n', { mode: 0o600 })
  t.equal(await readTokenFile(file), good)
  chmodSync(file, 0o644)
  await t.rejects(readTokenFile(file), { code: 'INVALID_OPTION' })
  await t.rejects(readTokenFile(join(dir, 'missing')), { code: 'INVALID_OPTION', message: /cannot read/ })
})
