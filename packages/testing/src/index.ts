/**
 * @towerline/testing — what towerline's own tests stand on, for yours too: a fault-injecting
 * TCP proxy, a line-protocol server and client, and free ports. Dev only.
 *
 * @packageDocumentation
 */

export {
  type CertAuthority,
  CertFactory,
  type IssuedCert,
  type IssueOptions,
  type KeyFormat,
  type KeyType,
} from './cert-factory.js';
export { FaultProxy, type FaultProxyOptions, type FaultProxyStats } from './fault-proxy.js';
export { LineClient, type LineClientOptions, lineConnection } from './line-client.js';
export { LINE_GREETING, LineServer, type LineServerOptions } from './line-server.js';
export { freePort } from './ports.js';
export { RedisServer, type RedisServerOptions } from './redis-server.js';
