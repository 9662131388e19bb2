/**
 * Operations commands of the CLI: `ferry doctor` (what is wrong with this host),
 * `ferry install` (the systemd unit) and `ferry wait-ready` (the unit's
 * readiness check). They parse flags and call src/doctor and src/install.
 */
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Command, InvalidArgumentError } from 'commander'
import { FerryError } from '../errors/errors.js'
import { DEFAULT_DOCKER_HOST } from '../docker/client.js'
import { apiSocketFrom } from '../api/client.js'
import { doctorExitCode, formatReport, summarize } from '../doctor/checks.js'
import { probePluginAnswer } from '../doctor/probes.js'
import { AGENT_NODE_FLAGS, parseNodeFlags } from '../install/node-flags.js'
import { DEFAULT_UNIT_DIR, DROPIN_PATH, UNIT_NAME, flagValue, installUnits, pluginSocketOf, renderDockerDropin, renderUnit } from '../install/unit.js'
import { parseClusterUrl } from '../cluster/url.js'

/** bin/ferry of this installation (dist/cli/ops.js or src/cli/ops.ts -> ../../bin/ferry). */
export const FERRY_BIN = fileURLToPath(new URL('../../bin/ferry', import.meta.url))

function out (text: string): void { process.stdout.write(text) }

function seconds (v: string): number {
  if (!/^\d+(\.\d+)?$/.test(v) || Number(v) <= 0) throw new InvalidArgumentError('must be a positive number of seconds')
  return Number(v)
}

/** Every `--flag` in `args` must be an option of the agent command (values are not checked here). */
export function checkAgentArgs (args: readonly string[], known: ReadonlySet<string>): void {
  for (const a of args) {
    if (!a.startsWith('--')) continue
    const name = a.split('=')[0]!
    if (!known.has(name)) throw new FerryError('INVALID_OPTION', `"${name}" is not an option of ferry agent (see ferry agent --help)`)
  }
}

/** A warning when the agent flags carry a secret that the unit would show to every user; undefined otherwise. */
export function secretWarning (agentArgs: readonly string[]): string | undefined {
  const url = flagValue(agentArgs, '--cluster')
  if (url === undefined) return undefined
  let password: string | undefined
  try { password = parseClusterUrl(url).password } catch { return undefined } // the agent will report a bad URL
  if (password === undefined) return undefined
  return 'warning: the Redis password in --cluster will be readable by every user of this host (unit files and `systemctl show` are public, ' +
    'and so is the agent\'s command line in ps); use a Redis ACL user limited to ferry\'s keys, and keep Redis on a private network\n'
}

/** Poll the plugin socket the way the engine calls it until it answers. */
export async function waitReady (socket: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (;;) {
    const err = await probePluginAnswer(socket)
    if (err === undefined) return
    last = err
    if (Date.now() >= deadline) break
    await sleep(100)
  }
  throw new FerryError('AGENT_NOT_RUNNING', `${socket} did not answer within ${timeoutMs / 1000} s: ${last}`)
}

export function registerOpsCommands (program: Command): void {
  program.command('doctor')
    .description('check what the agent depends on (kernel, sysctls, iptables, engine, agent, Redis, clocks); exit 1 when a check fails')
    .option('--plugin-name <name>', "the agent's plugin name", 'ferry')
    .option('--plugin-dir <dir>', "the agent's plugin socket directory", '/run/docker/plugins')
    .option('--docker-host <url>', "the engine's API (default $DOCKER_HOST or unix:///var/run/docker.sock)")
    .option('--cluster <url>', 'also check this Redis (reachability, version, latency, clock skew)')
    .option('--json', 'print JSON')
    .action(async (o: { pluginName: string, pluginDir: string, dockerHost?: string, cluster?: string, json?: boolean }) => {
      pluginSocketOf(['--plugin-name', o.pluginName, '--plugin-dir', o.pluginDir]) // validates both
      const { runDoctor } = await import('../doctor/doctor.js')
      const results = await runDoctor({
        pluginName: o.pluginName,
        pluginDir: o.pluginDir,
        apiSocket: apiSocketFrom(program.opts<{ apiSocket?: string }>().apiSocket),
        dockerHost: o.dockerHost ?? process.env.DOCKER_HOST ?? DEFAULT_DOCKER_HOST,
        cluster: o.cluster,
      })
      if (o.json) out(JSON.stringify({ ok: doctorExitCode(results) === 0, summary: summarize(results), checks: results }, null, 2) + '\n')
      else out(formatReport(results))
      process.exitCode = doctorExitCode(results)
    })

  program.command('install')
    .description(`write the systemd unit ${UNIT_NAME} (started before docker.service) and a docker.service drop-in; agent flags follow --`)
    .usage('[--unit-dir DIR] [--dry-run] [-- AGENT-FLAGS...]')
    .option('--unit-dir <dir>', 'where to write the units', DEFAULT_UNIT_DIR)
    .option('--dry-run', 'print the units instead of writing them')
    .option('--node <path>', 'the node binary the unit runs', process.execPath)
    .option('--node-flags <flags>', `node's flags for the agent, space-separated ('' for V8's defaults; docs/cluster.md)`, AGENT_NODE_FLAGS.join(' '))
    .argument('[agent-flags...]', 'flags for ferry agent, after --')
    .action(async (agentArgs: string[], o: { unitDir: string, dryRun?: boolean, node: string, nodeFlags: string }) => {
      const agent = program.commands.find((c) => c.name() === 'agent')
      const known = new Set((agent?.options ?? []).map((x) => x.long).filter((x): x is string => x !== undefined))
      checkAgentArgs(agentArgs, known)
      const spec = { node: path.resolve(o.node), ferry: FERRY_BIN, agentArgs, nodeFlags: parseNodeFlags(o.nodeFlags) }
      const secret = secretWarning(agentArgs)
      if (secret !== undefined) process.stderr.write(secret)
      if (o.dryRun) {
        out(`# ${path.join(o.unitDir, UNIT_NAME)}\n${renderUnit(spec)}\n# ${path.join(o.unitDir, DROPIN_PATH)}\n${renderDockerDropin()}`)
        return
      }
      const files = await installUnits(o.unitDir, spec)
      out(`wrote ${files.unit}\nwrote ${files.dropin}\n` +
        'next: systemctl daemon-reload && systemctl enable --now ferry.service (the engine is ordered after it from its next start)\n')
    })

  program.command('wait-ready')
    .description("wait until the agent's plugin socket answers as the engine asks (the unit's ExecStartPost)")
    .option('--socket <path>', 'the plugin socket', '/run/docker/plugins/ferry.sock')
    .option('--timeout <seconds>', 'give up after this long', seconds, 60)
    .action(async (o: { socket: string, timeout: number }) => { await waitReady(o.socket, o.timeout * 1000) })
}
