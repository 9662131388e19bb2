/**
 * Kernel parameters through /proc/sys, in the calling process's network
 * namespace (net.* keys are per namespace). Keys come in three forms:
 *   'net.ipv4.ip_forward'                       dotted, as sysctl(8) prints them
 *   'net/ipv4/conf/br0.5/route_localnet'        slashed: dots are kept (interface names may contain dots)
 *   ['net', 'ipv4', 'conf', 'br0.5', 'route_localnet']
 * Values are strings without the trailing newline. Errors are FerryError KERNEL.
 */
import { access, readFile, writeFile } from 'node:fs/promises'
import { FerryError } from '../errors/errors.js'
import { errnoText } from './errno.js'

export type SysctlKey = string | readonly string[]

const ROOT = '/proc/sys'

/** The key's path segments; throws INVALID_REQUEST on an empty or escaping segment. */
export function sysctlSegments (key: SysctlKey): string[] {
  const segments = typeof key === 'string' ? key.split(key.includes('/') ? '/' : '.') : [...key]
  const bad = segments.length === 0 || segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\0'))
  if (bad) throw new FerryError('INVALID_REQUEST', `invalid sysctl key ${JSON.stringify(key)}`)
  return segments
}

/** Absolute /proc/sys path of a key. */
export function sysctlPath (key: SysctlKey): string {
  return `${ROOT}/${sysctlSegments(key).join('/')}`
}

function describe (key: SysctlKey): string {
  return typeof key === 'string' ? key : key.join('/')
}

function reason (err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (typeof code === 'string') return errnoText(code)
  return err instanceof Error ? err.message : String(err)
}

export async function readSysctl (key: SysctlKey): Promise<string> {
  const path = sysctlPath(key)
  try {
    return (await readFile(path, 'utf8')).replace(/\n$/, '')
  } catch (err) {
    throw new FerryError('KERNEL', `cannot read sysctl ${describe(key)}: ${reason(err)}`, { cause: err })
  }
}

/** Whether a sysctl or a directory of them exists (`net.bridge` appears once br_netfilter is loaded). */
export async function sysctlExists (key: SysctlKey): Promise<boolean> {
  return access(sysctlPath(key)).then(() => true, () => false)
}

export async function writeSysctl (key: SysctlKey, value: string): Promise<void> {
  const path = sysctlPath(key)
  try {
    await writeFile(path, value)
  } catch (err) {
    throw new FerryError('KERNEL', `cannot write sysctl ${describe(key)}=${value}: ${reason(err)}`, { cause: err })
  }
}

/** Reading and writing kernel parameters: /proc/sys (procSysctl), or a fake in unit tests. */
export interface SysctlAccess {
  read (key: SysctlKey): Promise<string>
  write (key: SysctlKey, value: string): Promise<void>
}

export const procSysctl: SysctlAccess = { read: readSysctl, write: writeSysctl }
