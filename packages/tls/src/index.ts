/**
 * @towerline/tls — certificates that rotate without dropping a connection. `loadTlsConfig`
 * checks a chain and key before they reach a listener; `TlsState` swaps a secure context
 * atomically; `ServerTlsProvider` and `ClientTlsProvider` follow a `ConfigProvider` (watched
 * files, a secret stream) on real Node servers and agents. No object here ever prints a key.
 *
 * @packageDocumentation
 */

export { displayPath, MAX_PEM_BYTES } from './pem.js';
export {
  ClientConfigProvider,
  ClientTlsProvider,
  ServerConfigProvider,
  type ServerFiles,
  type ServerTlsOptions,
  ServerTlsProvider,
  StreamConfigProvider,
  serverConfigFromFiles,
  type TlsClientSettings,
  type TlsProviderEvents,
  type TlsServerSettings,
} from './providers.js';
export {
  type CertificateInfo,
  loadTlsConfig,
  loadTlsConfigSync,
  parseCaBundle,
  parseTlsConfig,
  type TlsConfig,
  type TlsConfigInput,
} from './tls-config.js';
export {
  buildSecureContext,
  type ContextSettings,
  secureContextOptions,
  TlsState,
} from './tls-state.js';
