import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { inspect } from 'node:util';
import { expectOptions, TowerlineError } from '@towerline/core';
import { opensslReason, stripped } from './prove.js';
import type { TlsConfig } from './tls-config.js';

/** Settings that go into every secure context besides the certificate, key and CA. */
export type ContextSettings = Pick<
  SecureContextOptions,
  | 'ciphers'
  | 'minVersion'
  | 'maxVersion'
  | 'ecdhCurve'
  | 'sigalgs'
  | 'honorCipherOrder'
  | 'sessionIdContext'
>;

/** The options `tls.createSecureContext` takes for `config`, with `settings` and an optional CA. */
export function secureContextOptions(
  config: TlsConfig,
  settings: ContextSettings = {},
  ca: string | undefined = config?.ca,
): SecureContextOptions {
  expectOptions(config, false, 'config');
  return {
    ...settings,
    cert: config.cert,
    key: config.key,
    ...(config.passphrase ? { passphrase: config.passphrase } : {}),
    ...(ca ? { ca } : {}),
  };
}

/** Builds a secure context, turning OpenSSL's complaint into `ERR_TLS_INVALID`. */
export function buildSecureContext(
  config: TlsConfig,
  settings: ContextSettings = {},
  ca?: string,
): SecureContext {
  expectOptions(config, false, 'config');
  try {
    return createSecureContext(secureContextOptions(config, settings, ca));
  } catch (error) {
    throw new TowerlineError(
      'ERR_TLS_INVALID',
      `OpenSSL refuses a TLS context for ${config.leaf.serialNumber} (${opensslReason(error)})`,
      { cause: stripped(error) },
    );
  }
}

/**
 * The current TLS config and its secure context, swapped atomically (seed 001's `TlsState`,
 * the ArcSwap of JS). `secureContext()` is one property read; a handshake that already took a
 * context keeps it, so in-flight handshakes finish with the old certificate while new ones get
 * the new one. `swap()` builds the new context first: a bad config throws and the old one stays.
 *
 * @example
 * ```ts
 * const state = new TlsState(await loadTlsConfig({ cert, key }));
 * const server = tls.createServer({ SNICallback: (_name, cb) => cb(null, state.secureContext()) });
 * // on renewal:
 * state.swap(await loadTlsConfig({ cert, key }));
 * ```
 */
export class TlsState {
  #current: { config: TlsConfig; context: SecureContext };
  #version = 1;
  readonly #settings: ContextSettings;

  constructor(config: TlsConfig, settings: ContextSettings = {}) {
    this.#settings = settings;
    this.#current = { config, context: buildSecureContext(config, settings) };
  }

  /** The config in force. */
  current(): TlsConfig {
    return this.#current.config;
  }

  /** The secure context in force: hand it to a handshake. */
  secureContext(): SecureContext {
    return this.#current.context;
  }

  /** Increments with every swap. */
  get version(): number {
    return this.#version;
  }

  /** Replaces the config; throws `ERR_TLS_INVALID` (and keeps the old one) if it is unusable. */
  swap(config: TlsConfig): void {
    const context = buildSecureContext(config, this.#settings);
    this.#current = { config, context };
    this.#version++;
  }

  toJSON(): object {
    return { version: this.#version, current: this.#current.config };
  }

  [inspect.custom](): string {
    return `TlsState ${inspect(this.toJSON())}`;
  }
}
