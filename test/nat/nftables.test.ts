/**
 * The NftablesDriver's bookkeeping against a fake nft (no root, no kernel): which
 * transactions it sends for element deltas, the fallback to a rewrite, and the
 * events its watcher reacts to. The kernel is exercised by test/kernel/nftables.test.ts.
 */
import t from 'tap'
import type { ExecOptions, ExecResult } from '../../src/kernel/exec.js'
import { FerryError } from '../../src/errors/errors.js'
import { NftablesDriver, isTamperEvent } from '../../src/nat/nftables.js'
import type { SysctlAccess } from '../../src/kernel/sysctl.js'
import type { NatNetwork } from '../../src/nat/types.js'

const sysctl: SysctlAccess = { read: async () => '0', write: async () => undefined }

function fake (): { run: (argv: readonly string[], opts?: ExecOptions) => Promise<ExecResult>, batches: string[], failNext: number } {
  const state = {
    batches: [] as string[],
    failNext: 0,
    run: async (argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> => {
      if (argv[0] === 'nft' && argv[1] === 'list') return { stdout: '', stderr: 'Error: No such file or directory', code: 1 }
      if (argv[0] === 'nft' && argv[1] === '-f') {
        if (state.failNext > 0) { state.failNext--; throw new FerryError('KERNEL', 'nft failed (exit 1): No such file or directory') }
        state.batches.push(opts.input ?? '')
        return { stdout: '', stderr: '', code: 0 }
      }
      return { stdout: '', stderr: '', code: 127 } // no iptables, no conntrack
    },
  }
  return state
}

const n1: NatNetwork = { id: 'n1'.padEnd(64, 'a'), bridge: 'fy-n1', subnet: '10.31.0.0/24', gateway: '10.31.0.1', icc: false, masquerade: true, internal: false }

t.test('element deltas, reference counts, fallback', async (t) => {
  const f = fake()
  const d = new NftablesDriver({ run: f.run, sysctl, session: false })
  await d.addNetwork(n1)
  t.match(f.batches[0], /^add table inet ferry\n/, 'the first change writes the whole table')
  const link = { id: 'l1', networkId: n1.id, parentIp: '10.31.0.2', childIp: '10.31.0.3', ports: [{ proto: 'tcp' as const, port: 80 }] }
  await d.allowLink(link)
  t.equal(f.batches[1], 'add element inet ferry link_to { "fy-n1" . 10.31.0.2 . 10.31.0.3 . tcp . 80 }\n' +
    'add element inet ferry link_from { "fy-n1" . 10.31.0.3 . 10.31.0.2 . tcp . 80 }\n', 'a link is two elements')
  await d.allowLink({ ...link, id: 'l2' })
  t.equal(f.batches.length, 2, 'the same elements for a second link: nothing sent')
  await d.removeLink('l1')
  t.equal(f.batches.length, 2, 'still needed by l2: nothing sent')
  await d.addNetwork({ ...n1, icc: true })
  t.equal(f.batches[2], 'delete element inet ferry icc { "fy-n1" . "fy-n1" }\n' +
    'delete element inet ferry link_to { "fy-n1" . 10.31.0.2 . 10.31.0.3 . tcp . 80 }\n' +
    'delete element inet ferry link_from { "fy-n1" . 10.31.0.3 . 10.31.0.2 . tcp . 80 }\n' +
    'add element inet ferry icc { "fy-n1" . "fy-n1" : accept }\n', 'ICC on: its verdict changes and the link has nothing left to allow')
  await d.setEndpoint({ id: 'e1', networkId: n1.id, address: '10.31.0.2', ports: [{ proto: 'udp', hostIp: '', hostPort: 53, hostPortEnd: 53, containerIp: '10.31.0.2', containerPort: 53, containerPortEnd: 53 }] })
  t.equal(f.batches[3], 'add element inet ferry any_port { udp . 53 : 10.31.0.2 . 53 }\n')
  t.equal(d.stats().lines, 1)
  f.failNext = 1
  await d.removeEndpoint('e1')
  t.equal(d.stats().reconciled, true, 'a refused delta falls back to a rewrite')
  t.match(f.batches[4], /^add table inet ferry\n/)
  t.notMatch(f.batches[4], /udp \. 53/, 'without the removed endpoint')
  f.failNext = 2
  await t.rejects(d.removeNetwork(n1.id), { code: 'KERNEL' }, 'refused twice: the change fails')
  t.same(d.state().networks.map((n) => n.id), [n1.id], 'and is undone in the desired state')
})

t.test('the watcher reacts to others removing ferry\'s objects, not to element deletions', async (t) => {
  t.ok(isTamperEvent('delete table inet ferry'))
  t.ok(isTamperEvent('delete rule inet ferry filter-forward handle 12'))
  t.ok(isTamperEvent('delete chain inet ferry user'))
  t.ok(isTamperEvent('delete map inet ferry any_port'))
  t.notOk(isTamperEvent('delete element inet ferry any_port { tcp . 8080 }'))
  t.notOk(isTamperEvent('delete table inet ferryother'))
  t.notOk(isTamperEvent('delete table ip filter'))
})

t.test('teardown is best effort: the FORWARD accepts are removed even when the table could not be', async (t) => {
  const calls: string[] = []
  const run = async (argv: readonly string[]): Promise<ExecResult> => {
    calls.push(argv.slice(0, 1).concat(argv.slice(-2)).join(' '))
    if (argv[0] === 'nft') return { stdout: '', stderr: 'Error: Operation not permitted', code: 1 }
    // iptables and ip6tables each hold ferry's accept once; -D takes it away.
    if (argv.includes('-S')) return { stdout: '-P FORWARD DROP\n-A FORWARD -m mark --mark 0x1/0x1 -m comment --comment "ferry: accepted by table inet ferry" -j ACCEPT\n', stderr: '', code: 0 }
    return { stdout: '', stderr: '', code: 0 }
  }
  const d = new NftablesDriver({ run, sysctl, session: false })
  await t.rejects(d.teardown(), { code: 'KERNEL', message: /nft could not list table inet ferry: Error: Operation not permitted/ })
  t.same(calls.filter((c) => c.includes('ACCEPT')).map((c) => c.split(' ')[0]), ['iptables', 'ip6tables'], 'both accepts were deleted after the table failed')
})
