/**
 * The firewall as the network driver sees it, with links kept across reconciles:
 * the driver's reconcile knows networks and endpoints only, so this wrapper adds
 * the links the runtime records call for (a restarted agent gets its link rules
 * back in the same batch as the rest, with no window without them).
 */
import type { FirewallDriver, FirewallState, LinkFirewall, NatLink } from '../nat/types.js'

export function withStoredLinks (fw: FirewallDriver & LinkFirewall, links: () => NatLink[]): FirewallDriver & LinkFirewall {
  return {
    reconcile: (state: FirewallState) => fw.reconcile({ ...state, links: state.links ?? links() }),
    addNetwork: (net) => fw.addNetwork(net),
    removeNetwork: (id) => fw.removeNetwork(id),
    setEndpoint: (ep) => fw.setEndpoint(ep),
    removeEndpoint: (id) => fw.removeEndpoint(id),
    teardown: () => fw.teardown(),
    allowLink: (link) => fw.allowLink(link),
    removeLink: (id) => fw.removeLink(id),
    linkIds: () => fw.linkIds(),
  }
}
