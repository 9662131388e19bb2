/**
 * The probes that read files: the engine's --dns from a fake /proc and daemon.json.
 * (The kernel, iptables and engine probes run in test/doctor/doctor.test.ts.)
 */
import t from 'tap'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { daemonJsonDns, parseDockerdArgs, probeEngineDns } from '../../src/doctor/probes.js'

t.test('dockerd\'s command line: --dns, --config-file and -H in both spellings', async (t) => {
  t.same(parseDockerdArgs(['/usr/bin/dockerd', '--dns', '10.30.0.1', '--dns=1.1.1.1', '-H', 'unix:///x.sock', '--config-file=/c.json', '--debug']),
    { dns: ['10.30.0.1', '1.1.1.1'], configFile: '/c.json', hosts: ['unix:///x.sock'] })
  t.same(parseDockerdArgs(['dockerd', '--host=fd://', '--dns']), { dns: [], hosts: ['fd://'] }, 'a flag without its value at the end')
  t.same(parseDockerdArgs(['dockerd', '--dns-search', 'x', '--dns-opt=ndots:2']), { dns: [], hosts: [] }, 'other --dns-* flags are not --dns')
})

t.test('daemon.json: "dns", absent, or a sentence for what dockerd would not read', async (t) => {
  t.same(daemonJsonDns('{"dns": ["10.30.0.1"], "live-restore": true}', 'd.json'), ['10.30.0.1'])
  t.same(daemonJsonDns('{}', 'd.json'), [])
  t.throws(() => daemonJsonDns('{', 'd.json'), /d.json is not JSON/)
  t.throws(() => daemonJsonDns('[]', 'd.json'), /not a JSON object/)
  t.throws(() => daemonJsonDns('{"dns": "10.30.0.1"}', 'd.json'), /"dns" is not a list of addresses/)
})

t.test('probeEngineDns: the dockerd serving the engine address, its flags and its daemon.json', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-doctor-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const proc = join(dir, 'proc')
  const proc1 = async (pid: number, argv: string[]): Promise<void> => {
    await mkdir(join(proc, String(pid)), { recursive: true })
    await writeFile(join(proc, String(pid), 'cmdline'), argv.join('\0') + '\0')
  }
  const conf = join(dir, 'daemon.json')
  await writeFile(conf, '{"dns": ["10.30.0.1"]}')
  await proc1(10, ['/usr/bin/containerd'])
  await proc1(11, ['/usr/bin/dockerd', '-H', 'unix:///other.sock', '--dns', '9.9.9.9'])
  await proc1(12, ['/usr/bin/dockerd', '-H', `unix://${dir}/docker.sock`, '--dns', '1.1.1.1', '--config-file', conf])
  await mkdir(join(proc, 'self'))
  t.same(await probeEngineDns(`unix://${dir}/docker.sock`, proc), { pid: 12, configFile: conf, servers: ['1.1.1.1', '10.30.0.1'], errors: [] })
  t.same(await probeEngineDns('unix:///nowhere.sock', proc), { servers: [], errors: ['no dockerd process serving unix:///nowhere.sock was found'] })
  await proc1(13, ['dockerd', '--config-file', join(dir, 'missing.json')])
  t.same(await probeEngineDns('unix:///var/run/docker.sock', proc), { pid: 13, configFile: join(dir, 'missing.json'), servers: [], errors: [] },
    'the default socket: the dockerd without -H; a missing daemon.json sets nothing')
  await writeFile(conf, 'nope')
  const bad = await probeEngineDns(`unix://${dir}/docker.sock`, proc)
  t.same(bad.servers, ['1.1.1.1'])
  t.match(bad.errors, [/daemon.json is not JSON/])
})

t.test('probeTcMirror: clsact and a mirred mirror work here, in a scratch namespace that is gone afterwards', async (t) => {
  const { probeTcMirror } = await import('../../src/doctor/probes.js')
  const { execFileSync } = await import('node:child_process')
  t.equal(await probeTcMirror(), undefined)
  t.notMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), new RegExp(`fydoc-tc-${process.pid}-`))
})
