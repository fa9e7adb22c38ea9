import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadConfig,
  PROFILES,
  type ServerConfig,
  StartupError,
  startApp,
  validateConfig,
} from '@towerline/durable-streams';
import { CertFactory } from '@towerline/testing';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'towerline-ds-config-'));
const certs = new CertFactory();
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  certs.cleanup();
});
const quiet = () => {};

function configDir(files: Record<string, string>): string {
  const d = mkdtempSync(join(dir, 'cfg-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
  return d;
}

async function phaseOf(run: () => unknown): Promise<{ phase: string; message: string }> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(StartupError);
    return { phase: (error as StartupError).phase, message: (error as Error).message };
  }
  throw new Error('expected a StartupError');
}

describe('loadConfig: layers', () => {
  it.each(PROFILES)('profile %s loads and validates (TLS paths aside)', (profile) => {
    const c = loadConfig({ profile, configDir: configDir({}), env: {} });
    const problems = validateConfig(c).filter((p) => !/tls\.(cert|key|client_ca)_path/.test(p));
    expect(problems).toEqual([]);
    if (profile === 'prod-tls')
      expect(c.transport).toMatchObject({ mode: 'tls', http: { versions: ['http1', 'http2'] } });
    if (profile === 'prod-mtls') expect(c.transport.mode).toBe('mtls');
    if (profile.startsWith('prod')) expect(c.storage.mode).toBe('file-durable');
    if (profile === 'dev') expect(c.observability.rust_log).toBe('debug');
  });

  it('applies every layer over the one before, in order', () => {
    const d = configDir({
      'default.toml':
        '[server]\nbind_address = "127.0.0.1:1000"\n[http]\ncors_origins = "https://a.example"\nstream_base_path = "/a"\n',
      'prod.toml': '[http]\ncors_origins = "https://b.example"\n[limits]\nmax_stream_bytes = 2\n',
      'local.toml': '[limits]\nmax_stream_bytes = 3\n[storage]\ndata_dir = "/local"\n',
    });
    const extra = join(d, 'extra.toml');
    writeFileSync(
      extra,
      '[storage]\ndata_dir = "/extra"\n[transport.connection]\nlong_poll_timeout_secs = 5\n',
    );
    const c = loadConfig({
      profile: 'prod',
      configDir: d,
      configPath: extra,
      env: {
        DS_TRANSPORT__CONNECTION__LONG_POLL_TIMEOUT_SECS: '7',
        DS_PROXY__TRUSTED_PROXIES: '10.0.0.0/8,::1/128',
      },
    });
    expect(c.server.bind_address).toBe('127.0.0.1:1000'); // default.toml over built-ins
    expect(c.http.cors_origins).toBe('https://b.example'); // prod.toml over default.toml
    expect(c.http.stream_base_path).toBe('/a');
    expect(c.limits.max_stream_bytes).toBe(3); // local.toml over prod.toml
    expect(c.storage.mode).toBe('file-durable'); // the prod profile
    expect(c.storage.data_dir).toBe('/extra'); // --config over local.toml
    expect(c.transport.connection.long_poll_timeout_secs).toBe(7); // DS_* over everything
    expect(c.proxy.trusted_proxies).toEqual(['10.0.0.0/8', '::1/128']);
  });

  it('maps the legacy fields', () => {
    const d = configDir({
      'default.toml':
        '[server]\nport = 4500\n[tls]\ncert_path = "/c.crt"\nkey_path = "/c.key"\n[log]\nrust_log = "warn"\n',
    });
    const c = loadConfig({ configDir: d, env: {} });
    expect(c.server.bind_address).toBe('0.0.0.0:4500');
    expect(c.transport.tls).toMatchObject({ cert_path: '/c.crt', key_path: '/c.key' });
    expect(c.observability.rust_log).toBe('warn');
  });

  it('DS_SERVER__BIND_ADDRESS overrides the bind address', () => {
    expect(
      loadConfig({ env: { DS_SERVER__BIND_ADDRESS: '127.0.0.1:9999' } }).server.bind_address,
    ).toBe('127.0.0.1:9999');
  });
});

describe('phase-aware startup errors', () => {
  it('[load_config]: bad TOML, a missing --config, a bad DS_* value, an unknown profile', async () => {
    const bad = configDir({ 'default.toml': '[server\nbind_address = ' });
    expect((await phaseOf(() => loadConfig({ configDir: bad, env: {} }))).phase).toBe(
      'load_config',
    );
    expect(
      (await phaseOf(() => loadConfig({ configPath: join(dir, 'nope.toml'), env: {} }))).message,
    ).toContain('nope.toml does not exist');
    expect(
      (await phaseOf(() => loadConfig({ env: { DS_PROXY__ENABLED: 'maybe' } }))).message,
    ).toContain('proxy.enabled (from DS_PROXY__ENABLED): expected true or false');
    expect((await phaseOf(() => loadConfig({ profile: 'staging' as never, env: {} }))).phase).toBe(
      'load_config',
    );
  });

  const base = (patch: (c: ServerConfig) => void): ServerConfig => {
    const c = loadConfig({ env: { DS_SERVER__BIND_ADDRESS: '127.0.0.1:0' } });
    patch(c);
    return c;
  };

  it.each([
    [
      'tls without cert/key',
      (c: ServerConfig) => (c.transport.mode = 'tls'),
      /needs transport.tls.cert_path/,
    ],
    [
      'http mode with http2',
      (c: ServerConfig) => (c.transport.http.versions = ['http1', 'http2']),
      /http1 only/,
    ],
    [
      'http3',
      (c: ServerConfig) => (c.transport.http.versions = ['http3' as never]),
      /http3 is not implemented/,
    ],
    [
      'ALPN without h2 for http2',
      (c: ServerConfig) => {
        c.transport.mode = 'tls';
        c.transport.tls.cert_path = '/a';
        c.transport.tls.key_path = '/b';
        c.transport.http.versions = ['http1', 'http2'];
      },
      /must include h2/,
    ],
    [
      'proxy without trusted proxies',
      (c: ServerConfig) => (c.proxy.enabled = true),
      /needs proxy.trusted_proxies/,
    ],
    [
      'bad CIDR',
      (c: ServerConfig) => (c.proxy.trusted_proxies = ['10.0.0.0/99']),
      /trusted_proxies\[0\].*not a valid address or CIDR/,
    ],
    [
      'identity header outside mtls',
      (c: ServerConfig) => {
        c.proxy.identity.mode = 'header';
        c.proxy.identity.header_name = 'x-id';
      },
      /only allowed with transport.mode mtls/,
    ],
    ['bad bind address', (c: ServerConfig) => (c.server.bind_address = 'nowhere'), /bind_address/],
    ['bad base path', (c: ServerConfig) => (c.http.stream_base_path = 'v1'), /stream_base_path/],
  ])('[validate_config]: %s', async (_name, patch, message) => {
    const { phase, message: text } = await phaseOf(() => startApp(base(patch), quiet));
    expect(phase).toBe('validate_config');
    expect(text).toMatch(message);
    expect(text).toContain('likely cause');
  });

  it('[check_tls_files]: a missing file and a directory', async () => {
    const missing = await phaseOf(() =>
      startApp(
        base((c) => {
          c.transport.mode = 'tls';
          c.transport.tls.cert_path = join(dir, 'missing.crt');
          c.transport.tls.key_path = join(dir, 'missing.key');
        }),
        quiet,
      ),
    );
    expect(missing).toMatchObject({ phase: 'check_tls_files' });
    expect(missing.message).toContain('missing.crt does not exist');
    const isDir = await phaseOf(() =>
      startApp(
        base((c) => {
          c.transport.mode = 'tls';
          c.transport.tls.cert_path = dir;
          c.transport.tls.key_path = dir;
        }),
        quiet,
      ),
    );
    expect(isDir.message).toContain('is a directory');
  });

  it('[build_tls_context]: a mismatched pair, without printing the key', async () => {
    const ca = certs.createCA();
    const a = ca.issue({ commonName: 'a' });
    const b = ca.issue({ commonName: 'b' });
    const { phase, message } = await phaseOf(() =>
      startApp(
        base((c) => {
          c.transport.mode = 'tls';
          c.transport.tls.cert_path = a.certPath;
          c.transport.tls.key_path = b.keyPath;
        }),
        quiet,
      ),
    );
    expect(phase).toBe('build_tls_context');
    expect(message).toContain('does not match');
    expect(message).not.toContain('PRIVATE KEY');
  });

  it('[bind_listener]: the address is in use', async () => {
    const first = await startApp(
      base(() => {}),
      quiet,
    );
    try {
      const port = new URL(first.url).port;
      const { phase, message } = await phaseOf(() =>
        startApp(
          base((c) => (c.server.bind_address = `127.0.0.1:${port}`)),
          quiet,
        ),
      );
      expect(phase).toBe('bind_listener');
      expect(message).toContain('EADDRINUSE');
    } finally {
      await first.close();
    }
  });

  it('[start_server]: the storage directory cannot be used', async () => {
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const { phase } = await phaseOf(() =>
      startApp(
        base((c) => {
          c.storage.mode = 'file-durable';
          c.storage.data_dir = join(file, 'streams');
        }),
        quiet,
      ),
    );
    expect(phase).toBe('start_server');
    mkdirSync(join(dir, 'ok'), { recursive: true });
  });
});
