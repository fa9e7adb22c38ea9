import { Agent, type AgentOptions } from 'node:https';
import type { ConnectionOptions, SecureContext, TlsOptions, Server as TlsServer } from 'node:tls';
import { inspect } from 'node:util';
import {
  ConfigProvider,
  type ConfigProviderOptions,
  type FileSourceOptions,
  fileSource,
} from '@towerline/config';
import { type Disposable, expectOptions, TowerlineError, TypedEmitter } from '@towerline/core';
import { displayPath } from './pem.js';
import { parseCaBundle, parseTlsConfig, type TlsConfig } from './tls-config.js';
import { buildSecureContext, type ContextSettings, secureContextOptions } from './tls-state.js';

/** What a TLS server serves; every field rotates. */
export interface TlsServerSettings {
  /** The certificate for clients without SNI, and for names without one of their own. */
  default: TlsConfig;
  /** Certificates per hostname; `*.example.com` matches one label. */
  sni?: Readonly<Record<string, TlsConfig>>;
  /** CA bundle that verifies client certificates (mTLS). */
  clientCa?: string;
  /** Ciphers, TLS versions and the rest of a secure context. */
  context?: ContextSettings;
}

/** How a TLS client connects; every field rotates. */
export interface TlsClientSettings {
  /** The client certificate, for mTLS. */
  identity?: TlsConfig;
  /** CA bundle that verifies the server. */
  ca?: string;
  servername?: string;
  context?: ContextSettings;
}

/** Server options fixed when the server is created (Node reads them per connection). */
export interface ServerTlsOptions {
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
  ALPNProtocols?: string[];
}

export type TlsProviderEvents = {
  /** A new certificate set is in force. */
  rotated: { version: number; serialNumber: string };
  /** A new value could not be turned into secure contexts; the old ones stay. */
  rejected: { error: TowerlineError };
};

type Source<S> = ConfigProvider<S, any> | S;

const asProvider = <S>(source: Source<S>): ConfigProvider<S, any> =>
  source instanceof ConfigProvider ? source : new ConfigProvider<S>({ initial: source });

interface ServerContexts {
  settings: TlsServerSettings;
  fallback: SecureContext;
  exact: Map<string, SecureContext>;
  wildcard: Map<string, SecureContext>;
}

/**
 * Contexts already built for a settings value (by `serverConfigFromFiles`' check, or by an
 * earlier provider), so that one rotation builds each context once.
 */
const built = new WeakMap<TlsServerSettings, ServerContexts>();

/** Builds every context of a settings value, or throws `ERR_TLS_INVALID`. */
function buildServerContexts(settings: TlsServerSettings): ServerContexts {
  expectOptions(settings, false, 'settings');
  const cached = built.get(settings);
  if (cached) return cached;
  const ca = settings.clientCa;
  // OpenSSL skips what it cannot parse in a CA bundle: check it, or garbage lets a server start.
  if (ca !== undefined) parseCaBundle(ca, 'client CA');
  const fallback = buildSecureContext(settings.default, settings.context, ca);
  const exact = new Map<string, SecureContext>();
  const wildcard = new Map<string, SecureContext>();
  for (const [name, config] of Object.entries(settings.sni ?? {})) {
    const ctx = buildSecureContext(config, settings.context, ca);
    const host = name.toLowerCase();
    if (host.startsWith('*.')) wildcard.set(host.slice(2), ctx);
    else exact.set(host, ctx);
  }
  const contexts = { settings, fallback, exact, wildcard };
  built.set(settings, contexts);
  return contexts;
}

/**
 * Serves rotating certificates from a Node TLS server (`tls`, `https`, `http2` secure). Every
 * accepted config version is applied twice: through `server.setSecureContext()` (clients
 * without SNI) and through the `SNICallback` of {@link serverOptions} (per-hostname
 * certificates). Each new context carries the CA, ciphers and TLS versions again, so they
 * survive a rotation; `requestCert`, `rejectUnauthorized` and ALPN are server options and stay.
 * Handshakes under way keep the context they started with; existing connections are untouched.
 *
 * @example
 * ```ts
 * const certs = serverConfigFromFiles({ cert: '/tls/tls.crt', key: '/tls/tls.key' });
 * await certs.start();
 * const tlsProvider = new ServerTlsProvider(certs, { ALPNProtocols: ['h2', 'http/1.1'] });
 * const server = https.createServer(tlsProvider.serverOptions(), handler);
 * tlsProvider.attach(server);
 * ```
 */
export class ServerTlsProvider {
  readonly events = new TypedEmitter<TlsProviderEvents>({
    channel: 'towerline:tls',
    source: 'server',
  });
  readonly config: ConfigProvider<TlsServerSettings, any>;
  readonly #options: ServerTlsOptions;
  #contexts: ServerContexts;
  #version: number;
  readonly #servers = new Set<Pick<TlsServer, 'setSecureContext'>>();
  readonly #subscription: Disposable;

  constructor(source: Source<TlsServerSettings>, options: ServerTlsOptions = {}) {
    this.config = asProvider(source);
    this.#options = options;
    this.#contexts = buildServerContexts(this.config.get());
    this.#version = this.config.version;
    this.#subscription = this.config.events.subscribe('updated', ({ version }) =>
      this.#update(version),
    );
  }

  /** The config version whose certificates are in force. */
  get version(): number {
    return this.#version;
  }

  /** The settings in force. */
  get current(): TlsServerSettings {
    return this.#contexts.settings;
  }

  /** The context a handshake for `servername` gets: its own, a wildcard's, or the default. */
  secureContext(servername?: string): SecureContext {
    const c = this.#contexts;
    if (!servername) return c.fallback;
    const host = servername.toLowerCase();
    const exact = c.exact.get(host);
    if (exact) return exact;
    const dot = host.indexOf('.');
    return (dot > 0 && c.wildcard.get(host.slice(dot + 1))) || c.fallback;
  }

  /** Options for `tls.createServer`, `https.createServer` or `http2.createSecureServer`. */
  serverOptions(extra: TlsOptions = {}): TlsOptions {
    const settings = this.#contexts.settings;
    return {
      ...extra,
      ...secureContextOptions(settings.default, settings.context, settings.clientCa),
      ...(this.#options.requestCert !== undefined
        ? { requestCert: this.#options.requestCert }
        : {}),
      ...(this.#options.rejectUnauthorized !== undefined
        ? { rejectUnauthorized: this.#options.rejectUnauthorized }
        : {}),
      ...(this.#options.ALPNProtocols ? { ALPNProtocols: this.#options.ALPNProtocols } : {}),
      SNICallback: (servername, cb) => {
        try {
          cb(null, this.secureContext(servername));
        } catch (error) {
          cb(error as Error, undefined);
        }
      },
    };
  }

  /** Applies every new version to `server` with `setSecureContext()`; returns a detach. */
  attach(server: Pick<TlsServer, 'setSecureContext'>): () => void {
    this.#servers.add(server);
    this.#apply(server);
    return () => {
      this.#servers.delete(server);
    };
  }

  /** Stops following the config (the config itself is the caller's to close). */
  close(): void {
    this.#subscription.dispose();
    this.#servers.clear();
  }

  #apply(server: Pick<TlsServer, 'setSecureContext'>): void {
    const s = this.#contexts.settings;
    server.setSecureContext(secureContextOptions(s.default, s.context, s.clientCa));
  }

  #update(version: number): void {
    let next: ServerContexts;
    try {
      next = buildServerContexts(this.config.get());
    } catch (error) {
      this.events.emit('rejected', {
        error:
          error instanceof TowerlineError
            ? error
            : new TowerlineError('ERR_TLS_INVALID', 'cannot build TLS contexts', { cause: error }),
      });
      return;
    }
    this.#contexts = next;
    this.#version = version;
    for (const server of this.#servers) {
      try {
        this.#apply(server);
      } catch (error) {
        this.events.emit('rejected', {
          error: new TowerlineError(
            'ERR_TLS_INVALID',
            'setSecureContext() refused the new config',
            {
              cause: error,
            },
          ),
        });
      }
    }
    this.events.emit('rotated', { version, serialNumber: next.settings.default.leaf.serialNumber });
  }

  [inspect.custom](): string {
    return `ServerTlsProvider ${inspect({ version: this.version, default: this.#contexts.settings.default })}`;
  }
}

interface ClientAgent {
  version: number;
  agent: Agent;
}

/**
 * Rotating client-side TLS: `agent()` returns the `https.Agent` of the current config version,
 * a new one per version; the old agent closes its idle sockets at once and each busy one as its
 * request finishes, so no request fails over a rotation and the next ones present the new client
 * certificate. `connectOptions()` serves raw `tls.connect`.
 *
 * @example
 * ```ts
 * const client = new ClientTlsProvider(clientConfig);
 * https.get({ host, port, path: '/', agent: client.agent() }, onResponse);
 * ```
 */
export class ClientTlsProvider {
  readonly config: ConfigProvider<TlsClientSettings, any>;
  readonly #agentOptions: AgentOptions;
  #current: ClientAgent | undefined;
  readonly #retired = new Set<Agent>();

  constructor(source: Source<TlsClientSettings>, options: { agent?: AgentOptions } = {}) {
    this.config = asProvider(source);
    this.#agentOptions = { keepAlive: true, ...options.agent };
  }

  /** Options for `tls.connect` under the current config. */
  connectOptions(extra: ConnectionOptions = {}): ConnectionOptions {
    const s = this.config.get();
    return {
      ...extra,
      ...s.context,
      ...(s.identity ? { cert: s.identity.cert, key: s.identity.key } : {}),
      ...(s.identity?.passphrase ? { passphrase: s.identity.passphrase } : {}),
      ...(s.ca ? { ca: s.ca } : {}),
      ...(s.servername ? { servername: s.servername } : {}),
    };
  }

  /** The agent of the current config version. */
  agent(): Agent {
    const version = this.config.version;
    const current = this.#current;
    if (current && current.version === version) return current.agent;
    const agent = new Agent({ ...this.#agentOptions, ...(this.connectOptions() as AgentOptions) });
    this.#current = { version, agent };
    if (current) this.#retire(current.agent);
    return agent;
  }

  /** Destroys every agent and socket. */
  close(): void {
    this.#current?.agent.destroy();
    this.#current = undefined;
    for (const agent of this.#retired) agent.destroy();
    this.#retired.clear();
  }

  #retire(agent: Agent): void {
    this.#retired.add(agent);
    // Busy sockets are destroyed as their request finishes, instead of returning to the pool.
    agent.keepSocketAlive = () => false;
    for (const sockets of Object.values(agent.freeSockets))
      for (const s of sockets ?? []) s.destroy();
    const settle = () => {
      const busy = Object.values(agent.sockets).reduce((n, list) => n + (list?.length ?? 0), 0);
      if (busy === 0) {
        agent.destroy();
        this.#retired.delete(agent);
        agent.off('free', onFree);
      }
    };
    const onFree = () => setImmediate(settle);
    agent.on('free', onFree);
    settle();
  }
}

/**
 * A {@link ConfigProvider} under seed 000's names: `start()`, `getConfig()` (its `get_config`)
 * and `streamHealthy` (its `stream_healthy`).
 */
export class StreamConfigProvider<T, Raw = T> extends ConfigProvider<T, Raw> {
  /** The current value (seed 000's `get_config`). */
  getConfig(): T {
    return this.get();
  }
  /** Whether the source is delivering (seed 000's `stream_healthy`). */
  get streamHealthy(): boolean {
    return this.healthy;
  }
}

/** Seed 000's `ServerConfigProvider`: rotating server TLS settings. */
export class ServerConfigProvider<Raw = TlsServerSettings> extends StreamConfigProvider<
  TlsServerSettings,
  Raw
> {}

/** Seed 000's `ClientConfigProvider`: rotating client TLS settings. */
export class ClientConfigProvider<Raw = TlsClientSettings> extends StreamConfigProvider<
  TlsClientSettings,
  Raw
> {}

export interface ServerFiles {
  cert: string;
  key: string;
  /** Client CA bundle for mTLS; rotates with the rest. */
  clientCa?: string;
  passphrase?: string;
}

/**
 * Server TLS settings from watched files: in-place writes, rename-over and the Kubernetes
 * `..data` swap all rotate the certificate; a half-written or mismatched pair is refused
 * (`rejected`) and the old one stays. Call `start()` before use.
 */
export function serverConfigFromFiles(
  files: ServerFiles,
  options: FileSourceOptions & { context?: ContextSettings; now?: () => number } & Pick<
      ConfigProviderOptions<TlsServerSettings>,
      'policy' | 'clock' | 'name'
    > = {},
): ServerConfigProvider<Record<string, string>> {
  expectOptions(files, false, 'files');
  expectOptions(options, true);
  const paths: Record<string, string> = { cert: files.cert, key: files.key };
  if (files.clientCa) paths.clientCa = files.clientCa;
  return new ServerConfigProvider<Record<string, string>>({
    name: options.name ?? 'tls:server',
    source: fileSource(paths, options),
    ...(options.policy ? { policy: options.policy } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    parse: (pem) => {
      const settings: TlsServerSettings = {
        default: parseTlsConfig(
          { cert: pem.cert!, key: pem.key!, passphrase: files.passphrase },
          { cert: `cert ${displayPath(files.cert)}`, key: `key ${displayPath(files.key)}` },
          options.now,
        ),
        ...(pem.clientCa !== undefined
          ? { clientCa: parseCaBundle(pem.clientCa, `client CA ${displayPath(files.clientCa!)}`) }
          : {}),
        ...(options.context ? { context: options.context } : {}),
      };
      buildServerContexts(settings); // refuse what OpenSSL would refuse, before it is in force
      return settings;
    },
  });
}
