/**
 * The FORWARD accept's parsing: the policy and ferry's rules in `iptables -S FORWARD`,
 * and the backend in `iptables -V`. Its effect on traffic beside an engine is in
 * test/kernel/nftables.test.ts.
 */
import t from 'tap'
import type { ExecResult } from '../../src/kernel/exec.js'
import { IptablesForwardAccept, parseBackend, parseForward } from '../../src/nat/iptables-accept.js'

t.test('parseForward', async (t) => {
  t.same(parseForward('-P FORWARD DROP\n-A FORWARD -m mark --mark 0x1/0x1 -m comment --comment "ferry: accepted by table inet ferry" -j ACCEPT\n-A FORWARD -j DOCKER-USER\n'), { policy: 'DROP', rules: 1 })
  t.same(parseForward('-P FORWARD ACCEPT\n'), { policy: 'ACCEPT', rules: 0 })
})

t.test('parseBackend', async (t) => {
  t.equal(parseBackend('iptables v1.8.9 (nf_tables)\n'), 'nf_tables')
  t.equal(parseBackend('iptables v1.8.7 (legacy)\n'), 'legacy')
  t.equal(parseBackend('iptables v1.4.21\n'), undefined, 'an old iptables says neither: legacy in effect')
})

t.test('the backend is read once; no program or an unknown one is not nf_tables', async (t) => {
  let calls = 0
  const ok = new IptablesForwardAccept(async (): Promise<ExecResult> => { calls++; return { stdout: 'iptables v1.8.9 (nf_tables)\n', stderr: '', code: 0 } }, undefined)
  t.equal(await ok.nfTables(), true)
  t.equal(await ok.nfTables(), true)
  t.equal(calls, 1, 'one -V run')
  const missing = new IptablesForwardAccept(async () => { throw new Error('spawn iptables ENOENT') }, undefined)
  t.equal(await missing.nfTables(), false)
  const old = new IptablesForwardAccept(async (): Promise<ExecResult> => ({ stdout: 'iptables v1.4.21\n', stderr: '', code: 0 }), undefined)
  t.equal(await old.nfTables(), false)
})

t.test('sync says whether it changed something or failed', async (t) => {
  const run = (policy: string, rules: number, fail = false) => async (argv: readonly string[]): Promise<ExecResult> => {
    if (argv.includes('-S')) {
      if (fail) return Promise.reject(new Error('iptables: resource busy'))
      return { stdout: `-P FORWARD ${policy}\n` + '-A FORWARD -m mark --mark 0x1/0x1 -m comment --comment "ferry: accepted by table inet ferry" -j ACCEPT\n'.repeat(rules), stderr: '', code: 0 }
    }
    return { stdout: '', stderr: '', code: 0 }
  }
  t.equal(await new IptablesForwardAccept(run('DROP', 0), undefined).sync(), 'changed', 'policy DROP, no rule: put')
  t.equal(await new IptablesForwardAccept(run('DROP', 1), undefined).sync(), 'unchanged')
  t.equal(await new IptablesForwardAccept(run('ACCEPT', 2), undefined).sync(), 'changed', 'policy ACCEPT: taken away')
  t.equal(await new IptablesForwardAccept(run('ACCEPT', 0), undefined).sync(), 'unchanged')
})
