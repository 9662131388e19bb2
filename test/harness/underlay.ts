/**
 * Simulated hosts on one underlay, for multi-host tests without the engine: an underlay
 * namespace with a bridge (and the address a Redis server listens on), and host namespaces
 * each joined to that bridge by a veth (`vpI` on the underlay side, `eth0` in the host).
 * Everything is made inside namespaces the test owns and removed on teardown (netns()).
 */
import { netns, nsExec, sh, type TeardownHost } from './netns.js'

export interface Underlay { ns: string, bridge: string }

/** An underlay namespace whose bridge `ulbr` holds `address` (/24). */
export function underlay (t: TeardownHost, name: string, address: string): Underlay {
  const ns = netns(t, name)
  nsExec(ns, ['ip', 'link', 'add', 'ulbr', 'type', 'bridge'])
  nsExec(ns, ['ip', 'addr', 'add', `${address}/24`, 'dev', 'ulbr'])
  nsExec(ns, ['ip', 'link', 'set', 'ulbr', 'up'])
  return { ns, bridge: 'ulbr' }
}

/** A host namespace on the underlay with `address` (/24) on its eth0; its underlay-side port is `port`. */
export function underlayHost (t: TeardownHost, ul: Underlay, name: string, port: string, address: string): string {
  const ns = netns(t, name)
  sh(['ip', '-n', ul.ns, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
  sh(['ip', '-n', ul.ns, 'link', 'set', port, 'master', ul.bridge, 'up'])
  sh(['ip', '-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0'])
  sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
  return ns
}
