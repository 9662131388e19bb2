/**
 * src/kernel/conntrack.ts with a recording runner: the argv of each call, the parsing of
 * `conntrack -L`, and which answers count as failures. (The program runs for real in the
 * firewall kernel tests' UDP scenario, test/harness/firewall.ts udpConntrackScenario.)
 */
import t from 'tap'
import { Conntrack, parseConntrack } from '../../src/kernel/conntrack.js'
import type { ExecResult } from '../../src/kernel/exec.js'

const LIST = [
  'udp      17 29 src=198.51.100.1 dst=10.0.0.1 sport=41000 dport=5353 [UNREPLIED] src=10.0.0.1 dst=198.51.100.1 sport=5353 dport=41000 mark=0 use=1',
  'udp      17 29 src=fd00::9 dst=fd00::1 sport=41001 dport=53 src=fd00:1::2 dst=fd00::9 sport=53 dport=41001 mark=0 use=1',
  'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.',
].join('\n')

function recorder (answer: (argv: readonly string[]) => ExecResult) {
  const calls: string[] = []
  const run = async (argv: readonly string[]): Promise<ExecResult> => { calls.push(argv.join(' ')); return answer(argv) }
  return { calls, run }
}

t.test('each call is one argv, of the family asked', async (t) => {
  const r = recorder((argv) => argv.includes('-L') ? { stdout: LIST, stderr: '', code: 0 } : { stdout: '', stderr: '', code: 0 })
  const c = new Conntrack(r.run, ['conntrack'])
  t.same(await c.listUdp(4), [
    { src: '198.51.100.1', dst: '10.0.0.1', sport: 41000, dport: 5353, replySrc: '10.0.0.1' },
    { src: 'fd00::9', dst: 'fd00::1', sport: 41001, dport: 53, replySrc: 'fd00:1::2' },
  ])
  await c.listUdp(6)
  await c.deleteUdpDstNat('10.20.0.2')
  await c.deleteUdpFlow({ src: '198.51.100.1', dst: '10.0.0.1', sport: 41000, dport: 5353 })
  t.same(r.calls, [
    'conntrack -L -p udp',
    'conntrack -L -p udp -f ipv6',
    'conntrack -D -p udp --dst-nat 10.20.0.2',
    'conntrack -D -p udp -s 198.51.100.1 -d 10.0.0.1 --sport 41000 --dport 5353',
  ])
})

t.test('a delete that finds nothing succeeds; another failure is a KERNEL error with conntrack\'s words', async (t) => {
  const nothing = new Conntrack(recorder(() => ({ stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.', code: 1 })).run)
  await t.resolves(nothing.deleteUdpDstNat('10.20.0.2'))
  const broken = new Conntrack(recorder(() => ({ stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted\n', code: 1 })).run)
  await t.rejects(broken.listUdp(4), { code: 'KERNEL', message: 'conntrack -L -p udp failed (exit 1): conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted' })
})

t.test('lines that are not a flow are skipped', async (t) => {
  t.same(parseConntrack('\nconntrack v1.4.7: 0 flow entries have been shown.\nudp 17 29 src=1.2.3.4 dst=5.6.7.8 sport=1\n'), [])
})
