/**
 * The Docker remote driver protocol's request and response shapes, with the JSON
 * schemas fastify validates every request body against. These wire types stay in
 * src/plugin/; the drivers consume ferry's own types (src/model/types.ts).
 * Newer engines add fields: unknown properties are accepted and ignored, but the
 * type of every field ferry reads is checked.
 */

const str = { type: 'string' } as const
const strOrNull = { type: ['string', 'null'] } as const
const anyObj = { type: ['object', 'null'] } as const
const ID = { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,128}$' } as const
/** ferry's pool ids are `<address space>/<subnet>[#n]`: printable, short. */
const POOL_ID = { type: 'string', pattern: '^[\\x21-\\x7e]{1,160}$' } as const

export interface PortMapWire { Proto: number, IP?: string, Port: number, HostIP?: string, HostPort?: number, HostPortEnd?: number }
export interface ExposedPortWire { Proto: number, Port: number }
export interface IpamDataWire { AddressSpace?: string, Pool: string, Gateway?: string, AuxAddresses?: Record<string, string> | null }

export interface CreateNetworkReq {
  NetworkID: string
  Options?: Record<string, unknown> | null
  IPv4Data?: IpamDataWire[] | null
  IPv6Data?: IpamDataWire[] | null
}
/** Docker 28+: sent before any pool is allocated when GetCapabilities said GwAllocChecker. */
export interface GwAllocCheckReq { Options?: Record<string, unknown> | null }
export interface NetworkReq { NetworkID: string }
export interface EndpointReq { NetworkID: string, EndpointID: string }
export interface CreateEndpointReq extends EndpointReq {
  Interface?: { Address?: string, AddressIPv6?: string, MacAddress?: string } | null
  Options?: Record<string, unknown> | null
}
export interface JoinReq extends EndpointReq { SandboxKey: string, Options?: Record<string, unknown> | null }
export interface ConnectivityReq extends EndpointReq { Options?: Record<string, unknown> | null }

export interface RequestPoolReq { AddressSpace?: string, Pool?: string, SubPool?: string, Options?: Record<string, string> | null, V6?: boolean }
export interface ReleasePoolReq { PoolID: string }
export interface RequestAddressReq { PoolID: string, Address?: string, Options?: Record<string, string> | null }
export interface ReleaseAddressReq { PoolID: string, Address: string }

const portMap = {
  type: 'object',
  required: ['Proto', 'Port'],
  properties: {
    Proto: { type: 'integer' }, IP: strOrNull, Port: { type: 'integer', minimum: 0, maximum: 65535 },
    HostIP: strOrNull, HostPort: { type: 'integer', minimum: 0, maximum: 65535 }, HostPortEnd: { type: 'integer', minimum: 0, maximum: 65535 },
  },
} as const

const exposed = {
  type: 'object',
  required: ['Proto', 'Port'],
  properties: { Proto: { type: 'integer' }, Port: { type: 'integer', minimum: 0, maximum: 65535 } },
} as const

/** Options maps that may carry port data: validated where ferry reads them. */
const endpointOptions = {
  type: ['object', 'null'],
  properties: {
    'com.docker.network.portmap': { type: ['array', 'null'], items: portMap },
    'com.docker.network.endpoint.exposedports': { type: ['array', 'null'], items: exposed },
    'com.docker.network.endpoint.macaddress': strOrNull,
  },
} as const

const ipamData = {
  type: 'object',
  required: ['Pool'],
  properties: {
    AddressSpace: str, Pool: str, Gateway: str,
    AuxAddresses: { type: ['object', 'null'], additionalProperties: str },
  },
} as const

/** CreateNetwork's and GwAllocCheck's Options: the engine's flags beside the -o map. */
const networkOptions = {
  type: ['object', 'null'],
  properties: {
    'com.docker.network.generic': { type: ['object', 'null'] },
    'com.docker.network.internal': { type: 'boolean' },
    'com.docker.network.enable_ipv4': { type: 'boolean' },
    'com.docker.network.enable_ipv6': { type: 'boolean' },
  },
} as const

export const schemas = {
  GwAllocCheck: { type: 'object', properties: { Options: networkOptions } },
  CreateNetwork: {
    type: 'object',
    required: ['NetworkID'],
    properties: {
      NetworkID: ID,
      Options: networkOptions,
      IPv4Data: { type: ['array', 'null'], items: ipamData },
      IPv6Data: { type: ['array', 'null'], items: ipamData },
    },
  },
  Network: { type: 'object', required: ['NetworkID'], properties: { NetworkID: ID } },
  AllocateNetwork: {
    type: 'object',
    required: ['NetworkID'],
    properties: {
      NetworkID: ID,
      Options: { type: ['object', 'null'], additionalProperties: str },
      IPv4Data: { type: ['array', 'null'], items: ipamData },
      IPv6Data: { type: ['array', 'null'], items: ipamData },
    },
  },
  Endpoint: { type: 'object', required: ['NetworkID', 'EndpointID'], properties: { NetworkID: ID, EndpointID: ID } },
  CreateEndpoint: {
    type: 'object',
    required: ['NetworkID', 'EndpointID'],
    properties: {
      NetworkID: ID,
      EndpointID: ID,
      Interface: { type: ['object', 'null'], properties: { Address: str, AddressIPv6: str, MacAddress: str } },
      Options: endpointOptions,
    },
  },
  Join: {
    type: 'object',
    required: ['NetworkID', 'EndpointID', 'SandboxKey'],
    properties: { NetworkID: ID, EndpointID: ID, SandboxKey: { type: 'string', maxLength: 4096 }, Options: endpointOptions },
  },
  Connectivity: {
    type: 'object',
    required: ['NetworkID', 'EndpointID'],
    properties: { NetworkID: ID, EndpointID: ID, Options: endpointOptions },
  },
  Discover: { type: 'object', properties: { DiscoveryType: { type: 'integer' }, DiscoveryData: {} } },
  RequestPool: {
    type: 'object',
    properties: {
      AddressSpace: str, Pool: str, SubPool: str,
      Options: { type: ['object', 'null'], additionalProperties: str },
      V6: { type: 'boolean' },
    },
  },
  ReleasePool: { type: 'object', required: ['PoolID'], properties: { PoolID: POOL_ID } },
  RequestAddress: {
    type: 'object',
    required: ['PoolID'],
    properties: { PoolID: POOL_ID, Address: str, Options: { type: ['object', 'null'], additionalProperties: str } },
  },
  ReleaseAddress: {
    type: 'object',
    required: ['PoolID', 'Address'],
    properties: { PoolID: POOL_ID, Address: str },
  },
  Empty: anyObj,
} as const

export const PROTO_BY_NUMBER: Record<number, 'tcp' | 'udp' | 'sctp'> = { 6: 'tcp', 17: 'udp', 132: 'sctp' }
