import t from 'tap'
import { readFileSync } from 'node:fs'
import { AGENT_NODE_FLAGS, parseNodeFlags } from '../../src/install/node-flags.js'
import { renderUnit } from '../../src/install/unit.js'

const read = (rel: string): string => readFileSync(new URL(`../../${rel}`, import.meta.url), 'utf8')

t.test('node flags: checked words', async (t) => {
  t.same(parseNodeFlags(''), [])
  t.same(parseNodeFlags(' --max-semi-space-size=2  --optimize-for-size '), ['--max-semi-space-size=2', '--optimize-for-size'])
  for (const bad of ['-x', '--a;b', '--a=$(id)', '--a=b c=d', 'rm', '--a=', '--a=x\n--b']) {
    t.throws(() => parseNodeFlags(bad), { code: 'INVALID_OPTION' }, bad)
  }
  t.same(parseNodeFlags(AGENT_NODE_FLAGS.join(' ')), AGENT_NODE_FLAGS, 'the defaults pass their own check')
})

t.test('every launcher of the agent runs node with AGENT_NODE_FLAGS', async (t) => {
  const shebang = read('bin/ferry').split('\n')[0]
  t.equal(shebang, `#!/usr/bin/env -S node ${AGENT_NODE_FLAGS.join(' ')} --`, "bin/ferry's #! line")
  const spec = { node: '/usr/bin/node', ferry: '/opt/ferry/bin/ferry', agentArgs: [] }
  t.match(renderUnit(spec), `\nEnvironment="FERRY_NODE_FLAGS=${AGENT_NODE_FLAGS.join(' ')}"\nExecStart=/usr/bin/node $FERRY_NODE_FLAGS /opt/ferry/bin/ferry agent\n`, 'the unit')
  t.match(renderUnit({ ...spec, nodeFlags: [] }), '\nEnvironment="FERRY_NODE_FLAGS="\n', 'the unit without them')
  t.throws(() => renderUnit({ ...spec, nodeFlags: ['--a b'] }), { code: 'INVALID_OPTION' })
  t.match(read('scripts/plugin-entrypoint.sh'), /^exec \/usr\/local\/bin\/node \$\{FERRY_NODE_FLAGS:-\} \/opt\/ferry\/bin\/ferry agent /m, "the plugin's entrypoint")
  t.match(read('scripts/package-plugin.mjs'), "env('FERRY_NODE_FLAGS', AGENT_NODE_FLAGS.join(' ')", "the plugin's setting")
})
