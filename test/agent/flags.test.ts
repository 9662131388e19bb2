/** The agent's --iptables flag: parsing as dockerd spells it, its conflict with --icc=false, and how status shows it. */
import t from 'tap'
import { buildCli, firewallText } from '../../src/cli/main.js'
import { iptablesEnabled } from '../../src/agent/main.js'

/** The options `ferry agent ARGS` hands to runAgent (the action is replaced: nothing starts). */
async function agentOpts (args: string[]): Promise<Record<string, unknown>> {
  const quiet = { writeErr: () => {}, writeOut: () => {} }
  const program = buildCli().exitOverride().configureOutput(quiet)
  const agent = program.commands.find((c) => c.name() === 'agent')!.exitOverride().configureOutput(quiet)
  let got: Record<string, unknown> = {}
  agent.action((opts: Record<string, unknown>) => { got = opts })
  await program.parseAsync(['node', 'ferry', 'agent', ...args])
  return got
}

t.test('--iptables is a dockerd-style boolean, on by default', async (t) => {
  t.equal((await agentOpts([])).iptables, undefined, 'absent: the default (on)')
  t.equal((await agentOpts(['--iptables'])).iptables, true)
  t.equal((await agentOpts(['--iptables=true'])).iptables, true)
  t.equal((await agentOpts(['--iptables=false'])).iptables, false)
  t.equal((await agentOpts(['--iptables', 'false'])).iptables, false)
  t.equal((await agentOpts(['--iptables=0'])).iptables, false)
  await t.rejects(agentOpts(['--iptables=maybe']), /"maybe" is not a boolean/)
})

t.test('--iptables=false cannot honour --icc=false, as dockerd says', async (t) => {
  t.equal(iptablesEnabled({}), true)
  t.equal(iptablesEnabled({ iptables: true, icc: false }), true)
  t.equal(iptablesEnabled({ iptables: false }), false)
  t.equal(iptablesEnabled({ iptables: false, icc: true }), false)
  t.throws(() => iptablesEnabled({ iptables: false, icc: false }), { code: 'INVALID_OPTION', message: /--icc=false .* --iptables=false .*: set --icc or --iptables to true/ })
})

t.test('ferry status shows the firewall', async (t) => {
  t.match(firewallText({ iptables: false }), /^disabled \(--iptables=false\)/)
  t.match(firewallText({ iptables: true }), /^iptables/)
  t.equal(firewallText(undefined), '-')
})
