/**
 * `ferry install`: the systemd unit of the agent and the drop-in that orders the
 * Docker engine after it. Rendering is pure; `installUnits` writes the files.
 *
 * Why this shape (observed, ../shared/reference/docker-remote-driver-trace.md):
 * an engine that starts while the plugin socket is missing waits about 15 s per
 * network and gives up for good on `--restart always` containers of ferry
 * networks. So the agent must be *ready* before the engine starts:
 * - ferry.service is `Before=docker.service`, and its start job only completes
 *   once the plugin socket answers (`ExecStartPost=… wait-ready`);
 * - the docker.service drop-in says `Wants=` + `After=ferry.service`. Not
 *   `Requires=`: with it, restarting ferry (an upgrade) would restart the engine
 *   and stop every container, and a broken ferry would keep the engine (and all
 *   non-ferry containers) from starting.
 * - `KillMode=control-group` (systemd's default, written out): the agent's only
 *   children are its DNS helper processes and short-lived `ip`/`iptables-restore`
 *   runs, all of which must go with it so they cannot race the next agent.
 *   Containers are not in the cgroup, and the kernel state stays, so they keep
 *   their network while the agent restarts. (Docker's own unit uses
 *   KillMode=process because its containerd shims are its children; ferry has none.)
 * - `Restart=always`, `RestartSec=1`, `StartLimitIntervalSec=0`: come back within
 *   the engine's ~15 s retry window, and never stop retrying; except after exit
 *   78 (`RestartPreventExitStatus`): a damaged state file, which a restart cannot
 *   mend and the operator must look at (`ferry agent --recover-store`).
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { FerryError } from '../errors/errors.js'
import { VERSION } from '../version.js'
import { AGENT_NODE_FLAGS, NODE_FLAGS_ENV, parseNodeFlags } from './node-flags.js'

export const DEFAULT_UNIT_DIR = '/etc/systemd/system'
export const UNIT_NAME = 'ferry.service'
export const DROPIN_PATH = 'docker.service.d/ferry.conf'
const DEFAULT_PLUGIN_DIR = '/run/docker/plugins'
const PLUGIN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/

export interface UnitSpec {
  /** Absolute path of the node binary. */
  node: string
  /** Absolute path of bin/ferry. */
  ferry: string
  /** `ferry agent` flags, passed through as given. */
  agentArgs: string[]
  /** Node's own flags for the agent (default AGENT_NODE_FLAGS), written as FERRY_NODE_FLAGS. */
  nodeFlags?: readonly string[]
}

/**
 * One ExecStart= word: plain when safe, else double-quoted. systemd expands
 * `%` specifiers and `$VAR`, so they are doubled; control characters are refused.
 */
export function systemdWord (arg: string): string {
  if (arg === '' || /[\x00-\x1f\x7f]/.test(arg)) {
    throw new FerryError('INVALID_OPTION', `the argument ${JSON.stringify(arg)} cannot go into a systemd unit (empty or control characters)`)
  }
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$')
  if (/^[A-Za-z0-9_@%+=:,./$-]+$/.test(arg)) return escaped
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

export function execLine (argv: readonly string[]): string {
  return argv.map(systemdWord).join(' ')
}

/** The value of `--name V` or `--name=V` in argv (the last one wins, as in commander). */
export function flagValue (args: readonly string[], name: string): string | undefined {
  let v: string | undefined
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === name) v = args[i + 1]
    else if (a.startsWith(`${name}=`)) v = a.slice(name.length + 1)
  }
  return v
}

/** The plugin socket the agent will serve with these flags. */
export function pluginSocketOf (agentArgs: readonly string[]): string {
  const name = flagValue(agentArgs, '--plugin-name') ?? 'ferry'
  if (!PLUGIN_NAME_RE.test(name)) throw new FerryError('INVALID_OPTION', `--plugin-name "${name}" must be letters, digits, '_', '.' or '-' (up to 63)`)
  const dir = flagValue(agentArgs, '--plugin-dir') ?? DEFAULT_PLUGIN_DIR
  if (!path.isAbsolute(dir)) throw new FerryError('INVALID_OPTION', `--plugin-dir "${dir}" must be an absolute path in a unit`)
  return path.join(dir, `${name}.sock`)
}

export function renderUnit (s: UnitSpec): string {
  for (const p of [s.node, s.ferry]) {
    if (!path.isAbsolute(p)) throw new FerryError('INVALID_OPTION', `"${p}" must be an absolute path in a unit`)
  }
  const socket = pluginSocketOf(s.agentArgs)
  const nodeFlags = parseNodeFlags((s.nodeFlags ?? AGENT_NODE_FLAGS).join(' ')).join(' ')
  return `# Written by \`ferry install\` (ferry ${VERSION}); run it again to change the agent's flags.
[Unit]
Description=ferry container networking agent (Docker network and IPAM plugin)
Wants=network-online.target
After=network-online.target
# The engine must find the plugin at its start (see docker.service.d/ferry.conf).
Before=docker.service
# Never give up restarting: the engine cannot serve ferry networks without the agent.
StartLimitIntervalSec=0

[Service]
Type=exec
# Node's flags for the agent and its DNS helpers (docs/cluster.md, "The agent's memory"); a drop-in
# with \`Environment=${NODE_FLAGS_ENV}=\` runs it with V8's defaults. $${NODE_FLAGS_ENV} is split on spaces.
Environment="${NODE_FLAGS_ENV}=${nodeFlags}"
ExecStart=${execLine([s.node])} $${NODE_FLAGS_ENV} ${execLine([s.ferry, 'agent', ...s.agentArgs])}
# The start job completes only when the plugin socket answers the engine's first call,
# so docker.service (ordered after this unit) never starts without its plugin.
ExecStartPost=${execLine([s.node, s.ferry, 'wait-ready', '--socket', socket, '--timeout', '60'])}
TimeoutStartSec=90
Restart=always
RestartSec=1
# A damaged state file (exit 78) needs the operator: no restart loop, see docs/errors.md (STORE_DAMAGED).
RestartPreventExitStatus=78
# systemd's default, written out: stop the agent with its DNS helpers and any running
# ip/iptables-restore. Containers are not in this cgroup and the kernel state stays.
KillMode=control-group
TimeoutStopSec=30
UMask=0077
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
`
}

export function renderDockerDropin (): string {
  return `# Written by \`ferry install\`: start the Docker engine once the ferry agent is ready.
# Wants=, not Requires=: a failing or restarting ferry must not stop or restart the engine.
[Unit]
Wants=${UNIT_NAME}
After=${UNIT_NAME}
`
}

export interface InstalledFiles { unit: string, dropin: string }

async function writeAtomic (file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 })
  const tmp = `${file}.tmp-${process.pid}`
  await fs.writeFile(tmp, text, { mode: 0o644 })
  await fs.rename(tmp, file)
}

/** Write ferry.service and docker.service.d/ferry.conf under `unitDir`. */
export async function installUnits (unitDir: string, spec: UnitSpec): Promise<InstalledFiles> {
  const files = { unit: path.join(unitDir, UNIT_NAME), dropin: path.join(unitDir, DROPIN_PATH) }
  const unit = renderUnit(spec)
  try {
    await writeAtomic(files.unit, unit)
    await writeAtomic(files.dropin, renderDockerDropin())
  } catch (err) {
    throw new FerryError('INVALID_OPTION', `cannot write the systemd units under ${unitDir}: ${(err as Error).message}`, { cause: err })
  }
  return files
}
