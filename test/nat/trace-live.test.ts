/**
 * `ferry trace --live` (src/nat/trace-live.ts) over a recording runner and a fake
 * monitor: the trace table's transactions (added, and deleted even when the probe
 * fails), the probe's argv, the parse of `nft monitor trace` lines (as nft 1.0.6
 * prints them), the verdict of the first packet, and the backend check. The real
 * trace is test/e2e/trace.test.ts's.
 */
import t from 'tap'
import { FerryError } from '../../src/errors/errors.js'
import type { ExecOptions, ExecResult, LineChild } from '../../src/kernel/exec.js'
import {
  checkLiveBackend, liveVerdict, LiveTracer, parseTraceLine, probeArgv, renderTraceAdd, renderTraceDelete, traceFirewallSource, type LiveProbe,
} from '../../src/nat/trace-live.js'
import { NftablesDriver } from '../../src/nat/nftables.js'

const TRACE = [
  'trace id 9f1c inet ferry-trace prerouting packet: iif "fy-one" ip saddr 10.72.0.2 ip daddr 10.72.0.3 tcp dport 80',
  'trace id 9f1c inet ferry-trace prerouting rule ip saddr 10.72.0.2 ip daddr 10.72.0.3 tcp dport 80 meta nftrace set 1 (verdict continue)',
  'trace id 9f1c inet ferry raw-prerouting policy accept ',
  'trace id 9f1c inet ferry filter-forward rule iifname @bridges meta mark set meta mark | 0x01000000 (verdict continue)',
  'trace id 9f1c inet ferry filter-forward rule jump user (verdict jump user)',
  'trace id 9f1c inet ferry user rule ip saddr 10.72.0.2 drop (verdict drop)',
  'trace id 77aa inet ferry-trace prerouting packet: a retransmission',
  'trace id 77aa inet ferry-trace prerouting rule ip saddr 10.72.0.2 ip daddr 10.72.0.3 tcp dport 80 meta nftrace set 1 (verdict continue)',
  'trace id 77aa inet ferry user rule ip saddr 10.72.0.2 drop (verdict drop)',
]

t.test('monitor lines', async (t) => {
  t.same(parseTraceLine(TRACE[1]!), { id: '9f1c', event: { table: 'inet ferry-trace', chain: 'prerouting', rule: 'ip saddr 10.72.0.2 ip daddr 10.72.0.3 tcp dport 80 meta nftrace set 1', verdict: 'continue' } })
  t.same(parseTraceLine(TRACE[2]!), { id: '9f1c', event: { table: 'inet ferry', chain: 'raw-prerouting', verdict: 'accept' } })
  t.equal(parseTraceLine(TRACE[0]!), undefined, 'a packet dump is no event')
  t.equal(parseTraceLine('something else'), undefined)
  const v = liveVerdict(TRACE)
  t.equal(v.verdict, 'dropped')
  t.same(v.droppedBy, { table: 'inet ferry', chain: 'user', rule: 'ip saddr 10.72.0.2 drop', verdict: 'drop' })
  t.equal(v.events.length, 4, 'the first packet only, without the trace table\'s own rule')
  // A routed packet's forward events come with another id: the marking rule, not the id, starts a packet.
  const routed = liveVerdict([TRACE[1]!, 'trace id 0001 inet ferry nat-prerouting policy accept', 'trace id 0002 inet ferry filter-forward rule oifname @external drop (verdict drop)'])
  t.match(routed, { verdict: 'dropped', droppedBy: { chain: 'filter-forward', rule: 'oifname @external drop' } })
  t.equal(liveVerdict(['trace id 1 inet ferry user rule drop (verdict drop)']).verdict, 'unseen', 'nothing counts before the probe is marked')
  t.equal(liveVerdict([]).verdict, 'unseen')
  t.equal(liveVerdict(TRACE.slice(0, 4)).verdict, 'passed')
})

t.test('the trace table and the probe', async (t) => {
  const fromContainer: LiveProbe = { src: '10.72.0.2', dst: '10.72.0.3', proto: 'tcp', port: 80, netns: '/run/netns/x' }
  t.equal(renderTraceAdd(fromContainer), [
    'add table inet ferry-trace',
    'delete table inet ferry-trace',
    'add table inet ferry-trace',
    'add chain inet ferry-trace prerouting { type filter hook prerouting priority raw - 20; policy accept; }',
    'add rule inet ferry-trace prerouting ip saddr 10.72.0.2 ip daddr 10.72.0.3 tcp dport 80 meta nftrace set 1',
  ].join('\n') + '\n')
  t.equal(renderTraceDelete(), 'delete table inet ferry-trace\n')
  t.match(renderTraceAdd({ src: '::1', dst: 'FD00::3', proto: 'icmp' }), /add rule inet ferry-trace output ip6 daddr fd00::3 icmpv6 type echo-request meta nftrace set 1/)
  t.same(probeArgv(fromContainer), ['nsenter', '--net=/run/netns/x', '--', 'nc', '-n', '-z', '-w', '2', '10.72.0.3', '80'])
  t.same(probeArgv({ src: '127.0.0.1', dst: '127.0.0.1', proto: 'udp', port: 53 }), ['nc', '-n', '-u', '-z', '-w', '1', '127.0.0.1', '53'])
  t.same(probeArgv({ src: '10.0.0.1', dst: '10.0.0.2', proto: 'icmp' }, ['busybox', 'ping']), ['busybox', 'ping', '-c', '1', '-W', '2', '10.0.0.2'])
  t.throws(() => probeArgv({ src: '10.0.0.1', dst: '10.0.0.2', proto: 'sctp', port: 9 }), /nc cannot send SCTP/)
  t.throws(() => probeArgv({ src: '10.0.0.1', dst: 'fd00::2', proto: 'tcp', port: 9 }), /one family/)
  t.throws(() => probeArgv({ src: '10.0.0.1', dst: '10.0.0.2', proto: 'tcp', port: 0 }), /port from 1 to 65535/)
  t.throws(() => probeArgv({ src: '10.0.0.1', dst: '10.0.0.2', proto: 'tcp', port: 1, netns: 'relative' }), /not a network namespace path/)
})

/** A runner that records argv and stdin, fails `nc` with `ncCode`, and `delete table` when asked to. */
function recorder (o: { ncCode?: number, failDelete?: boolean, noPing?: boolean } = {}): { calls: Array<{ argv: string[], input?: string }>, run: (argv: readonly string[], opts?: ExecOptions) => Promise<ExecResult> } {
  const calls: Array<{ argv: string[], input?: string }> = []
  return {
    calls,
    run: async (argv, opts) => {
      calls.push({ argv: [...argv], ...(opts?.input === undefined ? {} : { input: opts.input }) })
      if (o.failDelete === true && opts?.input?.startsWith('delete') === true) throw new FerryError('KERNEL', 'nft failed')
      if (o.noPing === true && argv[0] === 'ping') throw new FerryError('KERNEL', 'could not run ping: ENOENT')
      if (argv.includes('nc')) return { stdout: '', stderr: '', code: o.ncCode ?? 0 }
      return { stdout: '', stderr: '', code: 0 }
    },
  }
}

function fakeMonitor (lines: string[]): { started: string[][], stopped: () => number, monitor: (argv: readonly string[], onLine: (l: string) => void) => LineChild } {
  const started: string[][] = []
  let stops = 0
  return {
    started,
    stopped: () => stops,
    monitor: (argv, onLine) => {
      started.push([...argv])
      setTimeout(() => { for (const l of lines) onLine(l) }, 5)
      return { exited: Promise.resolve(), stop: () => { stops++ } }
    },
  }
}

t.test('a live trace: table added, probe sent, table deleted, monitor stopped', async (t) => {
  const r = recorder({ ncCode: 1 })
  const m = fakeMonitor(TRACE)
  const tracer = new LiveTracer({ run: r.run, monitor: m.monitor, settleMs: 10, timeoutMs: 200 })
  const res = await tracer.trace({ src: '10.72.0.2', dst: '10.72.0.3', proto: 'tcp', port: 80, netns: '/proc/1/ns/net' })
  t.same(m.started, [['nft', 'monitor', 'trace']])
  t.equal(m.stopped(), 1)
  t.same(r.calls.map((c) => c.argv[0]), ['nft', 'nsenter', 'nft'])
  t.match(r.calls[0]!.input, /add rule inet ferry-trace prerouting/)
  t.equal(r.calls[2]!.input, 'delete table inet ferry-trace\n')
  t.equal(res.verdict, 'dropped')
  t.same(res.probe, { argv: ['nsenter', '--net=/proc/1/ns/net', '--', 'nc', '-n', '-z', '-w', '2', '10.72.0.3', '80'], exitCode: 1, answered: false, output: '' })
})

t.test('the table is deleted when the probe cannot run, and a failed delete is said', async (t) => {
  const calls: string[] = []
  const run = async (argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> => {
    calls.push(opts?.input ?? argv[0]!)
    if (argv[0] === 'nsenter') throw new FerryError('KERNEL', 'could not run nsenter')
    return { stdout: '', stderr: '', code: 0 }
  }
  const m = fakeMonitor([])
  await t.rejects(new LiveTracer({ run, monitor: m.monitor, settleMs: 5 }).trace({ src: '10.0.0.2', dst: '10.0.0.3', proto: 'tcp', port: 1, netns: '/x' }), /could not run nsenter/)
  t.equal(calls.at(-1), 'delete table inet ferry-trace\n')
  t.equal(m.stopped(), 1)
  const r = recorder({ failDelete: true })
  await t.rejects(new LiveTracer({ run: r.run, monitor: fakeMonitor([]).monitor, settleMs: 5, timeoutMs: 20 }).trace({ src: '10.0.0.2', dst: '10.0.0.3', proto: 'tcp', port: 1 }),
    /the trace table could not be removed \(remove it with: nft delete table inet ferry-trace\)/)
})

t.test('ping falls back to busybox; a monitor that cannot start is an error', async (t) => {
  const r = recorder({ noPing: true })
  const res = await new LiveTracer({ run: r.run, monitor: fakeMonitor([]).monitor, settleMs: 5, timeoutMs: 20 }).trace({ src: '127.0.0.1', dst: '10.0.0.3', proto: 'icmp' })
  t.same(res.probe.argv.slice(0, 2), ['busybox', 'ping'])
  t.equal(res.verdict, 'unseen')
  const broken = (argv: readonly string[], _on: (l: string) => void, o: { onError: (e: FerryError) => void }): LineChild => {
    o.onError(new FerryError('KERNEL', `could not run ${argv[0]!}`))
    return { exited: Promise.resolve(), stop: () => undefined }
  }
  const r2 = recorder()
  await t.rejects(new LiveTracer({ run: r2.run, monitor: broken, settleMs: 5 }).trace({ src: '127.0.0.1', dst: '10.0.0.3', proto: 'icmp' }), /could not run nft/)
  t.same(r2.calls.map((c) => c.input?.split('\n')[0]), ['add table inet ferry-trace', 'delete table inet ferry-trace'], 'the table added, and deleted again')
  t.same(parseTraceLine('trace id 8b inet ferry-trace prerouting unknown rule handle 2 (verdict continue)')?.event, { table: 'inet ferry-trace', chain: 'prerouting', rule: '(a rule added since the trace began, handle 2)', verdict: 'continue' })
})

t.test('backends', async (t) => {
  await checkLiveBackend('nftables', async () => { throw new Error('not asked') })
  await checkLiveBackend('iptables', async () => ({ stdout: 'iptables v1.8.9 (nf_tables)\n', stderr: '', code: 0 }))
  await t.rejects(checkLiveBackend('iptables', async () => ({ stdout: 'iptables v1.8.9 (legacy)\n', stderr: '', code: 0 })), /needs iptables-nft .* \(legacy\)/)
  await t.rejects(checkLiveBackend('iptables', async () => { throw new Error('ENOENT') }), /not runnable/)
  const driver = new NftablesDriver({ session: false, run: async () => ({ stdout: '', stderr: '', code: 0 }) })
  const source = traceFirewallSource(() => ({ driver, choice: { backend: 'nftables' } }))
  const fw = source()
  t.equal(fw?.backend, 'nftables')
  t.same(fw?.state(), { networks: [], endpoints: [], links: [] })
  t.same(fw?.opts, {})
  t.equal(traceFirewallSource(() => ({ driver: {} }))(), undefined, '--iptables=false: nothing to trace')
  t.equal(traceFirewallSource(() => undefined)(), undefined, 'still starting')
})
