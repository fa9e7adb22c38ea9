import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import type { StorageMode } from './engine/engine.js';

/** The startup phases, as the seed names them in its error messages. */
export type StartupPhase =
  | 'load_config'
  | 'validate_config'
  | 'check_tls_files'
  | 'build_tls_context'
  | 'bind_listener'
  | 'start_server';

const LIKELY: Record<StartupPhase, string> = {
  load_config:
    'TOML syntax errors, a --config path that does not exist, or an invalid DS_* override value',
  validate_config:
    'transport mode and TLS fields disagree, HTTP versions and ALPN do not match, proxy trust without trusted_proxies, identity header outside mtls, or an invalid address, base path or CIDR',
  check_tls_files: 'a cert, key or client CA path is missing, is a directory, or is not readable',
  build_tls_context:
    'malformed PEM, an empty certificate chain, a key that is missing or does not match the certificate, or an invalid client CA bundle',
  bind_listener:
    'the address is already in use, the port needs privileges, or the bind target is invalid',
  start_server:
    'the storage directory is not writable or full, or the storage backend failed to open',
};

/** A startup failure: `[phase] what happened` plus the likely causes. Never quotes key material. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
  constructor(
    readonly phase: StartupPhase,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`[${phase}] ${message}\n  likely cause: ${LIKELY[phase]}`, options);
  }
}

export type TransportMode = 'http' | 'tls' | 'mtls';
export type HttpVersion = 'http1' | 'http2';

export interface ServerConfig {
  server: { bind_address: string };
  limits: {
    max_memory_bytes: number;
    max_stream_bytes: number;
    max_live_connections: number;
    catch_up_page_bytes: number;
    max_event_loop_lag_ms: number;
  };
  http: { cors_origins: string; stream_base_path: string };
  storage: { mode: StorageMode; data_dir: string; on_corruption: 'fail' | 'truncate' };
  transport: {
    mode: TransportMode;
    http: { versions: HttpVersion[] };
    connection: { long_poll_timeout_secs: number; sse_reconnect_interval_secs: number };
    tls: {
      cert_path?: string;
      key_path?: string;
      client_ca_path?: string;
      min_version: '1.2' | '1.3';
      max_version: '1.2' | '1.3';
      alpn_protocols: string[];
    };
  };
  proxy: {
    enabled: boolean;
    forwarded_headers: 'none' | 'x-forwarded' | 'forwarded';
    trusted_proxies: string[];
    identity: { mode: 'none' | 'header'; header_name?: string; require_tls: boolean };
  };
  observability: { rust_log: string; request_log_level: string };
}

export const PROFILES = ['default', 'dev', 'prod', 'prod-tls', 'prod-mtls'] as const;
export type Profile = (typeof PROFILES)[number];

/** Built-in defaults: what the seed documents. */
export function defaults(): ServerConfig {
  return {
    server: { bind_address: '0.0.0.0:4437' },
    limits: {
      max_memory_bytes: 104_857_600,
      max_stream_bytes: 10_485_760,
      max_live_connections: 10_000,
      catch_up_page_bytes: 10_485_760,
      max_event_loop_lag_ms: 2_000,
    },
    http: { cors_origins: '*', stream_base_path: '/v1/stream' },
    storage: { mode: 'memory', data_dir: './data/streams', on_corruption: 'fail' },
    transport: {
      mode: 'http',
      http: { versions: ['http1'] },
      connection: { long_poll_timeout_secs: 30, sse_reconnect_interval_secs: 60 },
      tls: { min_version: '1.2', max_version: '1.3', alpn_protocols: ['http/1.1'] },
    },
    proxy: {
      enabled: false,
      forwarded_headers: 'none',
      trusted_proxies: [],
      identity: { mode: 'none', require_tls: true },
    },
    observability: { rust_log: 'info', request_log_level: 'info' },
  };
}

/** Built-in profile layers, applied over the defaults. */
const PROFILE_LAYERS: Record<Profile, Record<string, unknown>> = {
  default: {},
  dev: { observability: { rust_log: 'debug' } },
  prod: {
    storage: { mode: 'file-durable', data_dir: './data/streams' },
    limits: { max_memory_bytes: 536_870_912, max_stream_bytes: 268_435_456 },
  },
  'prod-tls': {
    storage: { mode: 'file-durable', data_dir: './data/streams' },
    limits: { max_memory_bytes: 536_870_912, max_stream_bytes: 268_435_456 },
    transport: {
      mode: 'tls',
      http: { versions: ['http1', 'http2'] },
      tls: { alpn_protocols: ['http/1.1', 'h2'] },
    },
  },
  'prod-mtls': {
    storage: { mode: 'file-durable', data_dir: './data/streams' },
    limits: { max_memory_bytes: 536_870_912, max_stream_bytes: 268_435_456 },
    transport: {
      mode: 'mtls',
      http: { versions: ['http1', 'http2'] },
      tls: { alpn_protocols: ['http/1.1', 'h2'] },
    },
  },
};

type Tree = Record<string, unknown>;
const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(base: Tree, layer: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(layer))
    out[k] = isTree(v) && isTree(out[k]) ? merge(out[k] as Tree, v) : v;
  return out;
}

/** Maps the legacy fields: server.port, [tls] cert/key paths, [log].rust_log. */
function legacy(layer: Tree): Tree {
  const out: Tree = { ...layer };
  const server = isTree(out.server) ? { ...out.server } : undefined;
  if (server && server.port !== undefined) {
    if (server.bind_address === undefined) server.bind_address = `0.0.0.0:${server.port}`;
    delete server.port;
    out.server = server;
  }
  if (isTree(out.tls)) {
    const tls = out.tls;
    out.transport = merge(isTree(out.transport) ? out.transport : {}, {
      tls: {
        ...(tls.cert_path !== undefined ? { cert_path: tls.cert_path } : {}),
        ...(tls.key_path !== undefined ? { key_path: tls.key_path } : {}),
      },
    });
    delete out.tls;
  }
  if (isTree(out.log)) {
    out.observability = merge(isTree(out.observability) ? out.observability : {}, {
      rust_log: out.log.rust_log,
    });
    delete out.log;
  }
  return out;
}

function readToml(path: string): Tree {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new StartupError(
      'load_config',
      `cannot read ${path} (${(error as { code?: string }).code ?? 'error'})`,
      {
        cause: error,
      },
    );
  }
  try {
    return legacy(parseToml(text) as Tree);
  } catch (error) {
    throw new StartupError(
      'load_config',
      `${path} is not valid TOML: ${(error as Error).message.split('\n')[0]}`,
    );
  }
}

/** Coerces an env string to the type the defaults have at that path. */
function coerce(path: string[], raw: string, template: unknown): unknown {
  const name = `DS_${path.map((p) => p.toUpperCase()).join('__')}`;
  if (typeof template === 'boolean') {
    if (!/^(true|false)$/i.test(raw))
      throw new StartupError('load_config', `${name} must be true or false`);
    return raw.toLowerCase() === 'true';
  }
  if (typeof template === 'number') {
    if (!/^\d+$/.test(raw)) throw new StartupError('load_config', `${name} must be a whole number`);
    return Number(raw);
  }
  if (Array.isArray(template)) {
    const trimmed = raw.trim();
    if (trimmed.startsWith('[')) {
      try {
        return JSON.parse(trimmed);
      } catch {
        throw new StartupError('load_config', `${name} must be a list`);
      }
    }
    return trimmed === '' ? [] : trimmed.split(',').map((s) => s.trim());
  }
  return raw;
}

function fromEnv(env: NodeJS.ProcessEnv, template: Tree): Tree {
  const out: Tree = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('DS_') || raw === undefined) continue;
    const path = name.slice(3).toLowerCase().split('__');
    let t: unknown = template;
    for (const p of path) t = isTree(t) ? t[p] : undefined;
    let node = out;
    for (const p of path.slice(0, -1)) {
      if (!isTree(node[p])) node[p] = {};
      node = node[p] as Tree;
    }
    node[path.at(-1)!] = coerce(path, raw, t);
  }
  return out;
}

export interface LoadOptions {
  profile?: Profile;
  /** The `--config` file. */
  configPath?: string;
  /** Where `default.toml`, `<profile>.toml` and `local.toml` live. Default `./config`. */
  configDir?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Layers, later over earlier: built-in defaults → profile → `config/default.toml` →
 * `config/<profile>.toml` → `config/local.toml` → `--config <path>` → `DS_*` variables
 * (`DS_TRANSPORT__TLS__CERT_PATH`, …). Legacy fields are mapped on the way.
 */
export function loadConfig(options: LoadOptions = {}): ServerConfig {
  const profile = options.profile ?? 'default';
  if (!PROFILES.includes(profile)) {
    throw new StartupError(
      'load_config',
      `unknown profile ${profile}; expected one of ${PROFILES.join(', ')}`,
    );
  }
  const dir = options.configDir ?? 'config';
  let tree = merge(defaults() as unknown as Tree, PROFILE_LAYERS[profile]);
  for (const name of ['default.toml', `${profile}.toml`, 'local.toml']) {
    const path = join(dir, name);
    if (existsSync(path)) tree = merge(tree, readToml(path));
  }
  if (options.configPath !== undefined) {
    if (!existsSync(options.configPath))
      throw new StartupError('load_config', `--config ${options.configPath} does not exist`);
    tree = merge(tree, readToml(options.configPath));
  }
  tree = merge(tree, fromEnv(options.env ?? process.env, defaults() as unknown as Tree));
  return tree as unknown as ServerConfig;
}

/** Parses `a.b.c.d/n` (or an IPv6 CIDR); undefined when invalid. */
export function parseCidr(cidr: string): { address: string; bits: number } | undefined {
  const [address, bitsText] = cidr.split('/');
  const family = isIP(address ?? '');
  if (!family) return undefined;
  const max = family === 4 ? 32 : 128;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) return undefined;
  return { address: address!, bits };
}

/** Every problem with a loaded config, for `[validate_config]`. */
export function validateConfig(c: ServerConfig): string[] {
  const problems: string[] = [];
  const { transport: t, proxy } = c;
  if (!['http', 'tls', 'mtls'].includes(t.mode))
    problems.push(`transport.mode must be http, tls or mtls (got ${t.mode})`);
  for (const v of t.http.versions) {
    if (v === ('http3' as HttpVersion))
      problems.push('transport.http.versions: http3 is not implemented');
    else if (v !== 'http1' && v !== 'http2')
      problems.push(`transport.http.versions: unknown version ${v}`);
  }
  if (t.http.versions.length === 0) problems.push('transport.http.versions must not be empty');
  if (t.mode === 'http' && t.http.versions.some((v) => v !== 'http1')) {
    problems.push('transport.mode http supports http1 only');
  }
  if (t.mode !== 'http') {
    if (!t.tls.cert_path) problems.push(`transport.mode ${t.mode} needs transport.tls.cert_path`);
    if (!t.tls.key_path) problems.push(`transport.mode ${t.mode} needs transport.tls.key_path`);
    const alpn = t.tls.alpn_protocols;
    if (t.http.versions.includes('http1') && !alpn.includes('http/1.1')) {
      problems.push('transport.tls.alpn_protocols must include http/1.1 for http1');
    }
    if (t.http.versions.includes('http2') && !alpn.includes('h2')) {
      problems.push('transport.tls.alpn_protocols must include h2 for http2');
    }
    if (alpn.includes('h2') && !t.http.versions.includes('http2')) {
      problems.push(
        'transport.tls.alpn_protocols offers h2 but transport.http.versions lacks http2',
      );
    }
  }
  if (t.mode === 'mtls' && !t.tls.client_ca_path)
    problems.push('transport.mode mtls needs transport.tls.client_ca_path');
  if (!['memory', 'file-fast', 'file-durable', 'acid'].includes(c.storage.mode)) {
    problems.push(
      `storage.mode must be memory, file-fast, file-durable or acid (got ${c.storage.mode})`,
    );
  }
  if (!['fail', 'truncate'].includes(c.storage.on_corruption))
    problems.push('storage.on_corruption must be fail or truncate');
  if (proxy.enabled && proxy.trusted_proxies.length === 0)
    problems.push('proxy.enabled needs proxy.trusted_proxies');
  for (const cidr of proxy.trusted_proxies)
    if (!parseCidr(cidr)) problems.push(`proxy.trusted_proxies: invalid CIDR ${cidr}`);
  if (proxy.identity.mode === 'header') {
    if (t.mode !== 'mtls')
      problems.push('proxy.identity.mode header is only allowed with transport.mode mtls');
    if (!proxy.identity.header_name)
      problems.push('proxy.identity.mode header needs proxy.identity.header_name');
  }
  const bind = /^(.+):(\d{1,5})$/.exec(c.server.bind_address);
  const host = bind?.[1]?.replace(/^\[|\]$/g, '');
  if (!bind || !host || (!isIP(host) && !/^[a-z0-9.-]+$/i.test(host)) || Number(bind[2]) > 65_535) {
    problems.push(`server.bind_address must be host:port (got ${c.server.bind_address})`);
  }
  if (!c.http.stream_base_path.startsWith('/'))
    problems.push('http.stream_base_path must start with /');
  return problems;
}
