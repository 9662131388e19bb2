/**
 * The NftablesDriver's bookkeeping against a fake nft (no root, no kernel): which
 * transactions it sends for element deltas, the fallback to a rewrite, and when a
 * reconcile reads the table. The kernel is exercised by test/kernel/nftables.test.ts.
 */
import t from 'tap'
import type { ExecOptions, ExecResult } from '../../src/kernel/exec.js'
import { FerryError } from '../../src/errors/errors.js'
import { NftablesDriver } from '../../src/nat/nftables.js'
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
  t.equal(f.batches[1], 'create element inet ferry link_to { "fy-n1" . 10.31.0.2 . 10.31.0.3 . tcp . 80 }\n' +
    'create element inet ferry link_from { "fy-n1" . 10.31.0.3 . 10.31.0.2 . tcp . 80 }\n', 'a link is two elements')
  await d.allowLink({ ...link, id: 'l2' })
  t.equal(f.batches.length, 2, 'the same elements for a second link: nothing sent')
  await d.removeLink('l1')
  t.equal(f.batches.length, 2, 'still needed by l2: nothing sent')
  await d.addNetwork({ ...n1, icc: true })
  t.equal(f.batches[2], 'delete element inet ferry icc { "fy-n1" . "fy-n1" }\n' +
    'delete element inet ferry link_to { "fy-n1" . 10.31.0.2 . 10.31.0.3 . tcp . 80 }\n' +
    'delete element inet ferry link_from { "fy-n1" . 10.31.0.3 . 10.31.0.2 . tcp . 80 }\n' +
    'create element inet ferry icc { "fy-n1" . "fy-n1" : accept }\n', 'ICC on: its verdict changes and the link has nothing left to allow')
  await d.setEndpoint({ id: 'e1', networkId: n1.id, address: '10.31.0.2', ports: [{ proto: 'udp', hostIp: '', hostPort: 53, hostPortEnd: 53, containerIp: '10.31.0.2', containerPort: 53, containerPortEnd: 53 }] })
  t.equal(f.batches[3], 'create element inet ferry any_port { udp . 53 : 10.31.0.2 . 53 }\n')
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

t.test('a reconcile reads the table only when someone else committed since ferry last knew it', async (t) => {
  const f = fake()
  let gen = 40
  const listed = (): number => d.readStats().tableReads
  const run = async (argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> => {
    const res = await f.run(argv, opts)
    if (argv[0] === 'nft' && argv[1] === '-f') gen++ // every transaction of ferry's commits once
    return res
  }
  const d = new NftablesDriver({ run, sysctl, session: false, generation: { read: async () => gen, close: () => undefined } })
  await d.addNetwork(n1)
  t.equal(listed(), 1, 'the first change reads the table and writes it (the generation read before and after: ferry\'s commit only)')
  const state = d.state()
  t.equal(await d.reconcile(state), false, 'nothing committed since')
  t.equal(listed(), 1, 'and the table was not read')
  gen++ // someone else's transaction
  t.equal(await d.reconcile(state), true, 'someone else committed: the fake nft lists no table, rewritten')
  t.equal(listed(), 2, 'after reading it')
  const ep = { id: 'e1', networkId: n1.id, address: '10.31.0.2', ports: [{ proto: 'tcp' as const, hostIp: '', hostPort: 80, hostPortEnd: 80, containerIp: '10.31.0.2', containerPort: 80, containerPortEnd: 80 }] }
  await d.setEndpoint(ep)
  await d.removeEndpoint(ep.id)
  t.equal(await d.reconcile(d.state()), false, 'two deltas of ferry\'s own since')
  t.equal(listed(), 2, 'not read either')
  gen++ // someone else's transaction
  t.equal(await d.reconcile(d.state()), true, 'someone else committed')
  t.equal(listed(), 3, 'the table is read')
  t.equal(await d.reconcile(d.state()), false)
  t.equal(listed(), 3, 'and known again')
  await d.setEndpoint(ep)
  t.equal(await d.reconcile({ networks: [n1], endpoints: [] }), true, 'a state with other elements than ferry holds')
  t.equal(listed(), 4, 'is compared with the table as listed')
  const blind = new NftablesDriver({ run, sysctl, session: false, generation: { read: async () => { throw new Error('no netlink') }, close: () => undefined } })
  await blind.addNetwork(n1)
  await blind.reconcile(blind.state())
  await blind.reconcile(blind.state())
  t.equal(blind.readStats().tableReads, 3, 'without a generation every reconcile reads the table')
})

t.test('a quiet reconcile walks nothing: the caller\'s revision unchanged, the desired state not compared', async (t) => {
  const f = fake()
  let gen = 7
  const run = async (argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> => {
    const res = await f.run(argv, opts)
    if (argv[0] === 'nft' && argv[1] === '-f') gen++
    return res
  }
  const d = new NftablesDriver({ run, sysctl, session: false, generation: { read: async () => gen, close: () => undefined } })
  await d.addNetwork(n1)
  const ep = { id: 'e1', networkId: n1.id, address: '10.31.0.2', ports: [{ proto: 'tcp' as const, hostIp: '', hostPort: 80, hostPortEnd: 80, containerIp: '10.31.0.2', containerPort: 80, containerPortEnd: 80 }] }
  t.equal(await d.reconcile({ networks: [n1], endpoints: [], revision: 1 }), false, 'the state held, given as revision 1')
  t.equal(await d.reconcile({ networks: [n1], endpoints: [ep], revision: 1 }), false, 'revision 1 again: taken as the state held, not compared')
  t.same(d.state().endpoints, [], 'so the endpoint it names was not looked at')
  t.equal(await d.reconcile({ networks: [n1], endpoints: [ep], revision: 2 }), true, 'another revision: compared (and the table, which the fake nft lists as missing, rewritten)')
  t.same(d.state().endpoints.map((e) => e.id), ['e1'], 'and the desired state follows it')
  t.match(f.batches[f.batches.length - 1], /tcp \. 80/, 'its element committed')
  await d.removeEndpoint(ep.id)
  t.equal(await d.reconcile({ networks: [n1], endpoints: [ep], revision: 2 }), true, 'the same revision after a change of the driver\'s: compared again')
  t.same(d.state().endpoints.map((e) => e.id), ['e1'], 'the endpoint is back')
  await t.rejects(d.reconcile({ networks: [n1], endpoints: [{ ...ep, address: 'nope' }], revision: 3 }), 'a new revision is validated')
})

t.test('the FORWARD accepts are read at a quiet reconcile only with legacy iptables', async (t) => {
  for (const backend of ['nf_tables', 'legacy']) {
    let gen = 3
    const reads: string[] = []
    const run = async (argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> => {
      if (argv[0] === 'nft' && argv[1] === 'list') return { stdout: '', stderr: 'Error: No such file or directory', code: 1 }
      if (argv[0] === 'nft') { gen++; return { stdout: '', stderr: '', code: 0 } }
      if (argv.includes('-V')) return { stdout: `${argv[0]} v1.8.9 (${backend})\n`, stderr: '', code: 0 }
      if (argv.includes('-S')) {
        reads.push(argv[0]!)
        return { stdout: '-P FORWARD DROP\n-A FORWARD -m mark --mark 0x1/0x1 -m comment --comment "ferry: accepted by table inet ferry" -j ACCEPT\n', stderr: '', code: 0 }
      }
      return { stdout: '', stderr: '', code: 0 }
    }
    const d = new NftablesDriver({ run, sysctl, session: false, generation: { read: async () => gen, close: () => undefined } })
    await d.addNetwork(n1)
    const first = reads.length
    t.equal(first, 2, `${backend}: the first change reads iptables' and ip6tables' FORWARD`)
    await d.reconcile(d.state())
    await d.reconcile(d.state())
    t.equal(reads.length, backend === 'nf_tables' ? first : first + 4, backend === 'nf_tables' ? 'iptables-nft, nothing committed since: not read again' : 'legacy: read at every reconcile')
    gen++ // someone else's commit (an iptables-nft change among them)
    await d.reconcile(d.state())
    t.equal(reads.length, backend === 'nf_tables' ? first + 2 : first + 6, 'someone else committed: read')
    t.equal(d.readStats().forwardChecks, backend === 'nf_tables' ? 2 : 4)
  }
})
