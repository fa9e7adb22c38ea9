import { isIP } from 'node:net';
import * as v from 'valibot';
import { type ServerConfig, serverConfigSchema } from './config-schema.js';
import { expectation, issuePath, isUnknownKeyIssue, listsForTables } from './schema-tools.js';
import { SOURCES } from './sources.js';

/** Parses `a.b.c.d/n` (or an IPv6 CIDR); undefined when invalid. */
export function parseCidr(cidr: string): { address: string; bits: number } | undefined {
  const [address, bitsText, extra] = cidr.split('/');
  const family = isIP(address ?? '');
  if (!family || extra !== undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!/^\d*$/.test(bitsText ?? '') || !Number.isInteger(bits) || bits < 0 || bits > max)
    return undefined;
  return { address: address!, bits };
}

/** The host and port of `host:port` (`[v6]:port`), or undefined when it is not one. */
export function parseBind(address: string): { host: string; port: number } | undefined {
  const colon = address.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const portText = address.slice(colon + 1);
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (isIP(host) !== 6) return undefined;
  } else if (!isIP(host) && !/^[A-Za-z0-9.-]+$/.test(host)) return undefined;
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65_535) return undefined;
  return { host, port: Number(portText) };
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** Cross-field rules of the seed's `[validate_config]` phase, on a config the schema accepted. */
function crossCheck(c: ServerConfig, from: (key: string) => string): string[] {
  const problems: string[] = [];
  const { transport: t, proxy } = c;
  if (c.storage.mode === 'postgres' && !c.storage.postgres_url)
    problems.push('storage.mode postgres needs storage.postgres_url (DS_STORAGE__POSTGRES_URL)');
  const versions = t.http.versions;
  if (versions.includes('http3'))
    problems.push('transport.http.versions: http3 is not implemented');
  if (versions.length === 0) problems.push('transport.http.versions must not be empty');
  if (t.mode === 'http' && versions.some((x) => x !== 'http1')) {
    problems.push('transport.mode http supports http1 only (http2 needs tls or mtls)');
  }
  if (t.mode !== 'http') {
    if (!t.tls.cert_path) problems.push(`transport.mode ${t.mode} needs transport.tls.cert_path`);
    if (!t.tls.key_path) problems.push(`transport.mode ${t.mode} needs transport.tls.key_path`);
    const alpn = t.tls.alpn_protocols;
    if (versions.includes('http1') && !alpn.includes('http/1.1')) {
      problems.push('transport.tls.alpn_protocols must include http/1.1 for http1');
    }
    if (versions.includes('http2') && !alpn.includes('h2')) {
      problems.push('transport.tls.alpn_protocols must include h2 for http2');
    }
    if (alpn.includes('h2') && !versions.includes('http2')) {
      problems.push(
        'transport.tls.alpn_protocols offers h2 but transport.http.versions lacks http2',
      );
    }
    if (t.tls.min_version > t.tls.max_version) {
      problems.push('transport.tls.min_version is above transport.tls.max_version');
    }
  }
  if (t.mode === 'mtls' && !t.tls.client_ca_path)
    problems.push('transport.mode mtls needs transport.tls.client_ca_path');
  if (proxy.enabled && proxy.trusted_proxies.length === 0)
    problems.push('proxy.enabled needs proxy.trusted_proxies');
  proxy.trusted_proxies.forEach((cidr, i) => {
    if (!parseCidr(cidr)) {
      problems.push(
        `proxy.trusted_proxies[${i}] (from ${from('proxy.trusted_proxies')}) is not a valid address or CIDR (e.g. 10.0.0.0/24)`,
      );
    }
  });
  if (proxy.identity.mode === 'header') {
    if (t.mode !== 'mtls')
      problems.push('proxy.identity.mode header is only allowed with transport.mode mtls');
    if (!proxy.identity.header_name)
      problems.push('proxy.identity.mode header needs proxy.identity.header_name');
    else if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(proxy.identity.header_name))
      problems.push('proxy.identity.header_name is not a valid header name');
  }
  const base = c.http.stream_base_path;
  if (!base.startsWith('/') || /[\s?#\\]/.test(base) || base.includes('//')) {
    problems.push(
      `http.stream_base_path (from ${from('http.stream_base_path')}) must be a path that starts with / (no spaces, ?, #, \\ or //)`,
    );
  }
  if (!parseBind(c.server.bind_address)) {
    problems.push(
      `server.bind_address (from ${from('server.bind_address')}) must be host:port, e.g. 127.0.0.1:4437 or [::1]:4437`,
    );
  }
  return problems;
}

/**
 * Checks a config (from {@link loadConfig} or built by hand): first its shape against the
 * schema (types, ranges, unknown keys), then the cross-field rules. Returns the config with
 * defaults filled in, and every problem; messages name the key and, for a loaded config, where
 * its value came from, never the value.
 */
export function checkConfig(config: unknown): { config: ServerConfig; problems: string[] } {
  const locate = typeof config === 'object' && config ? SOURCES.get(config) : undefined;
  const from = (key: string) => (locate ? locate(key.split('.')) : 'the config object');
  const lists = listsForTables(serverConfigSchema, config).map(
    (path) => `${path}: expected a table, got a list`,
  );
  const parsed = v.safeParse(serverConfigSchema, config);
  if (lists.length > 0) return { config: config as ServerConfig, problems: lists };
  if (!parsed.success) {
    const problems = parsed.issues.map((issue) => {
      const { text } = issuePath(issue);
      return isUnknownKeyIssue(issue)
        ? `unknown key ${text}`
        : `${text || 'the config'}: ${expectation(serverConfigSchema, issue)}`;
    });
    return { config: config as ServerConfig, problems };
  }
  return { config: parsed.output, problems: crossCheck(parsed.output, from) };
}

/** Every problem with a config, for `[validate_config]`. */
export function validateConfig(config: ServerConfig): string[] {
  return checkConfig(config).problems;
}
