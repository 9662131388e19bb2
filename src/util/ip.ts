/** Small IPv4 helpers shared by the subsystems (the IPAM has the full CIDR math). */
export function prefixOf (cidr: string): number {
  const p = cidr.split('/')[1]
  return p === undefined ? 32 : Number(p)
}

export function addrOf (cidr: string): string {
  return cidr.split('/')[0] ?? cidr
}
