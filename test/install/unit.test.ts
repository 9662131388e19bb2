import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFile } from '../../src/kernel/exec.js'
import { execLine, flagValue, installUnits, pluginSocketOf, renderDockerDropin, renderUnit, systemdWord } from '../../src/install/unit.js'
import { checkAgentArgs, FERRY_BIN, secretWarning } from '../../src/cli/ops.js'
import { NODE, cleanEnv } from '../harness/agent.js'

const spec = { node: '/usr/bin/node', ferry: '/opt/ferry/bin/ferry', agentArgs: ['--plugin-name', 'ferry2', '--cluster', 'redis://10.0.0.5:6379', '--advertise-addr', '10.0.0.1'] }

t.test('systemd words', async (t) => {
  t.equal(systemdWord('--plugin-name'), '--plugin-name')
  t.equal(systemdWord('/usr/bin/node'), '/usr/bin/node')
  t.equal(systemdWord('base=10.0.0.0/8,size=24'), 'base=10.0.0.0/8,size=24')
  t.equal(systemdWord('100%'), '100%%', 'specifiers are escaped')
  t.equal(systemdWord('$HOME'), '$$HOME', 'variables are escaped')
  t.equal(systemdWord('a b'), '"a b"')
  t.equal(systemdWord('say "hi"\\'), '"say \\"hi\\"\\\\"')
  t.equal(systemdWord("it's"), '"it\'s"')
  t.throws(() => systemdWord(''), { code: 'INVALID_OPTION' })
  t.throws(() => systemdWord('a\nExecStartPre=/bin/sh'), { code: 'INVALID_OPTION' }, 'no line injection')
  t.equal(execLine(['/n', 'agent', '--x', 'a b']), '/n agent --x "a b"')
})

t.test('flags and the plugin socket', async (t) => {
  t.equal(flagValue(['--a', '1', '--a=2'], '--a'), '2')
  t.equal(flagValue(['--ab', '1'], '--a'), undefined)
  t.equal(pluginSocketOf([]), '/run/docker/plugins/ferry.sock')
  t.equal(pluginSocketOf(['--plugin-name', 'net1', '--plugin-dir=/run/p']), '/run/p/net1.sock')
  t.throws(() => pluginSocketOf(['--plugin-name', '../x']), { code: 'INVALID_OPTION' })
  t.throws(() => pluginSocketOf(['--plugin-dir', 'rel']), { code: 'INVALID_OPTION' })
  const known = new Set(['--cluster', '--plugin-name', '--no-dns-server'])
  t.doesNotThrow(() => checkAgentArgs(['--cluster=redis://r', '--no-dns-server', 'value'], known))
  t.throws(() => checkAgentArgs(['--clutser', 'x'], known), { message: /--clutser/ })
  t.equal(secretWarning(['--cluster', 'redis://r:6379']), undefined)
  t.match(secretWarning(['--cluster', 'redis://:s3cret@r:6379']), /password/)
  t.notMatch(secretWarning(['--cluster', 'redis://:s3cret@r:6379']), /s3cret/, 'the warning does not repeat the secret')
})

t.test('the unit: ordered before the engine, ready before it starts, restarted forever', async (t) => {
  const unit = renderUnit(spec)
  const lines = unit.split('\n')
  const has = (l: string): void => { t.ok(lines.includes(l), l) }
  has('Before=docker.service')
  has('Wants=network-online.target')
  has('After=network-online.target')
  has('StartLimitIntervalSec=0')
  has('Type=exec')
  has('Environment="FERRY_NODE_FLAGS=--max-semi-space-size=2 --heap-growing-percent=50"')
  has('ExecStart=/usr/bin/node $FERRY_NODE_FLAGS /opt/ferry/bin/ferry agent --plugin-name ferry2 --cluster redis://10.0.0.5:6379 --advertise-addr 10.0.0.1')
  has('ExecStartPost=/usr/bin/node /opt/ferry/bin/ferry wait-ready --socket /run/docker/plugins/ferry2.sock --timeout 60')
  has('Restart=always')
  has('RestartPreventExitStatus=78')
  has('KillMode=control-group')
  has('WantedBy=multi-user.target')
  t.notMatch(unit, /^Requires=/m)
  const dropin = renderDockerDropin()
  t.match(dropin, /^Wants=ferry\.service$/m)
  t.match(dropin, /^After=ferry\.service$/m)
  t.notMatch(dropin, /^Requires=/m, 'a ferry restart must not restart the engine')
  t.throws(() => renderUnit({ ...spec, node: 'node' }), { code: 'INVALID_OPTION' })
})

t.test('ferry install --unit-dir writes both files; --dry-run writes none', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fyin-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const files = await installUnits(dir, spec)
  t.equal(readFileSync(files.unit, 'utf8'), renderUnit(spec))
  t.equal(readFileSync(join(dir, 'docker.service.d', 'ferry.conf'), 'utf8'), renderDockerDropin())
  t.equal((statSync(files.unit).mode & 0o777).toString(8), '644')

  const cli = (args: string[]) => execFile([...NODE, FERRY_BIN, ...args], { env: cleanEnv(), allowFailure: true })
  const dir2 = join(dir, 'cli')
  const r = await cli(['install', '--unit-dir', dir2, '--', '--plugin-name', 'p1', '--reconcile-interval', '10'])
  t.equal(r.code, 0, r.stderr)
  const unit = readFileSync(join(dir2, 'ferry.service'), 'utf8')
  t.match(unit, new RegExp(`^ExecStart=${process.execPath} \\$FERRY_NODE_FLAGS ${FERRY_BIN} agent --plugin-name p1 --reconcile-interval 10$`, 'm'))
  t.match(unit, /--socket \/run\/docker\/plugins\/p1\.sock/)
  t.match(r.stdout, /systemctl daemon-reload/)

  const dry = await cli(['install', '--dry-run', '--unit-dir', join(dir, 'none')])
  t.equal(dry.code, 0)
  t.match(dry.stdout, /Before=docker\.service/)
  t.match(dry.stdout, /After=ferry\.service/)
  t.throws(() => statSync(join(dir, 'none')), 'dry run writes nothing')

  const noFlags = await cli(['install', '--dry-run', '--node-flags', ''])
  t.match(noFlags.stdout, /^Environment="FERRY_NODE_FLAGS="$/m, "--node-flags '': V8's defaults")
  const badFlags = await cli(['install', '--dry-run', '--node-flags', '--a;b'])
  t.not(badFlags.code, 0)
  t.match(badFlags.stderr, /node flags "--a;b"/)

  const bad = await cli(['install', '--dry-run', '--', '--no-such-flag'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--no-such-flag" is not an option of ferry agent/)

  const verify = await execFile(['systemd-analyze', 'verify', join(dir2, 'ferry.service')], { allowFailure: true }).catch(() => undefined)
  if (verify !== undefined) t.equal(verify.stderr.trim(), '', 'systemd-analyze verify accepts the unit')
})

t.test('wait-ready: waits for the plugin socket to answer as the engine asks', async (t) => {
  const { waitReady } = await import('../../src/cli/ops.js')
  const http = await import('node:http')
  const dir = mkdtempSync(join(tmpdir(), 'fywr-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sock = join(dir, 'p.sock')
  await t.rejects(waitReady(sock, 300), { code: 'AGENT_NOT_RUNNING', message: /did not answer within 0.3 s/ })
  const server = http.createServer((req, res) => {
    res.end(req.url === '/NetworkDriver.GetCapabilities' ? '{"Scope":"local"}' : '{}')
  })
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const events: string[] = []
  setTimeout(() => server.listen(sock, () => events.push('listening')), 300)
  await waitReady(sock, 5000)
  events.push('ready')
  t.same(events, ['listening', 'ready'], 'it waited for the socket to answer')
  const r = await execFile([...NODE, FERRY_BIN, 'wait-ready', '--socket', join(dir, 'none.sock'), '--timeout', '0.2'], { env: cleanEnv(), allowFailure: true })
  t.equal(r.code, 5)
  t.match(r.stderr, /did not answer/)
})
