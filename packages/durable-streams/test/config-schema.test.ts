import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ConfigProvider } from '@towerline/config';
import {
  CONFIG_KEYS,
  checkConfig,
  defaultServerConfig,
  loadConfig,
  type ServerConfig,
  StartupError,
  startApp,
} from '@towerline/durable-streams';
import { parse as parseToml } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'towerline-ds-schema-'));
const none = mkdtempSync(join(dir, 'empty-config-dir-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const toml = (text: string) => {
  const path = join(dir, `c${++n}.toml`);
  writeFileSync(path, text);
  return path;
};

function refusal(run: () => unknown): StartupError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(StartupError);
    return error as StartupError;
  }
  throw new Error('expected a StartupError');
}

const load = (text: string, env: Record<string, string> = {}) =>
  loadConfig({ configDir: none, configPath: toml(text), env });

describe('a misspelt key is refused, naming the right one', () => {
  it('DS_SERVER__BIND_ADRESS (once ignored: the server bound 0.0.0.0 with CORS *)', () => {
    const e = refusal(() =>
      loadConfig({ configDir: none, env: { DS_SERVER__BIND_ADRESS: '127.0.0.1:4437' } }),
    );
    expect(e.phase).toBe('load_config');
    expect(e.code).toBe('ERR_CONFIG_INVALID');
    expect(e.message).toContain(
      'unknown variable DS_SERVER__BIND_ADRESS: did you mean DS_SERVER__BIND_ADDRESS?',
    );
    expect(e.message).not.toContain('127.0.0.1:4437');
  });

  it('bind_adress in TOML, with the file and line', () => {
    const e = refusal(() => load('[server]\nbind_adress = "127.0.0.1:4437"\n'));
    expect(e.message).toMatch(
      /unknown key server\.bind_adress in .*c\d+\.toml line 2: did you mean server\.bind_address\?/,
    );
  });

  it.each([
    ['[http]\nstream_base_pth = "/x"\n', 'http.stream_base_path'],
    ['[transport.tls]\ncert_pth = "/x"\n', 'transport.tls.cert_path'],
    ['[proxy]\ntrusted_proxy = []\n', 'proxy.trusted_proxies'],
    ['[server]\nstream_base_path = "/x"\n', 'http.stream_base_path'],
    ['[limit]\nmax_memory_bytes = 1\n', 'limits'],
  ])('%j suggests %s', (text, suggestion) => {
    expect(refusal(() => load(text)).message).toContain(`did you mean ${suggestion}?`);
  });

  it('a variable naming a table says so', () => {
    const e = refusal(() => loadConfig({ configDir: none, env: { DS_TRANSPORT: 'x' } }));
    expect(e.message).toMatch(
      /DS_TRANSPORT: it names a table, not a key: set one of DS_TRANSPORT__MODE/,
    );
  });
});

describe('wrong types and values: [load_config], naming key, source and shape, never the value', () => {
  const cases: Array<[string, string, Record<string, string>, RegExp]> = [
    [
      'max_memory_bytes = -5',
      '[limits]\nmax_memory_bytes = -5\n',
      {},
      /limits\.max_memory_bytes \(from .*line 2\): expected a whole number >= 1.*got a negative number/,
    ],
    [
      'max_memory_bytes = "abc"',
      '[limits]\nmax_memory_bytes = "abc"\n',
      {},
      /expected a whole number >= 1.*got a string/,
    ],
    [
      'max_memory_bytes = 1e23',
      '[limits]\nmax_memory_bytes = 1e23\n',
      {},
      /got a number above the maximum|too large/,
    ],
    [
      'forwarded_headers = "bogus"',
      '[proxy]\nforwarded_headers = "bogus"\n',
      {},
      /proxy\.forwarded_headers .*expected one of "none", "x-forwarded", "forwarded", got a string/,
    ],
    [
      'min_version = "1.7" in http mode',
      '[transport.tls]\nmin_version = "1.7"\n',
      {},
      /transport\.tls\.min_version .*expected one of "1\.2", "1\.3"/,
    ],
    [
      'min_version = 1.2 unquoted',
      '[transport.tls]\nmin_version = 1.2\n',
      {},
      /quote it: it is a string/,
    ],
    ['limits = []', 'limits = []\n', {}, /limits \(from .*\): expected a table, got a list/],
    [
      'long_poll_timeout_secs = 0',
      '[transport.connection]\nlong_poll_timeout_secs = 0\n',
      {},
      /expected a whole number from 1 to 3600, got zero/,
    ],
    [
      'rust_log = "verbose"',
      '[observability]\nrust_log = "verbose"\n',
      {},
      /observability\.rust_log .*expected comma-separated trace\|debug/,
    ],
    [
      '[transport.http] versions = 5',
      '[transport.http]\nversions = 5\n',
      {},
      /transport\.http\.versions .*expected a list of/,
    ],
    ['proxy = 5', 'proxy = 5\n', {}, /proxy \(from .*\): expected a table, got a number/],
    [
      'stream_base_path = 5',
      '[http]\nstream_base_path = 5\n',
      {},
      /http\.stream_base_path .*expected a string, got a number/,
    ],
    [
      'DS_TRANSPORT__MODE=x',
      '',
      { DS_TRANSPORT__MODE: 'quic' },
      /transport\.mode \(from DS_TRANSPORT__MODE\): expected one of "http", "tls", "mtls"/,
    ],
    [
      'DS_PROXY__TRUSTED_PROXIES=[5]',
      '',
      { DS_PROXY__TRUSTED_PROXIES: '[5]' },
      /proxy\.trusted_proxies\[0\] \(from DS_PROXY__TRUSTED_PROXIES\): expected a string, got a number/,
    ],
    [
      '[log] rust_log = 1.5 (legacy)',
      '[log]\nrust_log = 1.5\n',
      {},
      /observability\.rust_log \(from .*line 2, as log\.rust_log\): .*got a fractional number/,
    ],
    [
      'a PEM pasted as a path',
      '',
      { DS_TRANSPORT__TLS__KEY_PATH: '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n' },
      /transport\.tls\.key_path \(from DS_TRANSPORT__TLS__KEY_PATH\): expected a file path \(one line; PEM content belongs in the file/,
    ],
    [
      'cors_origins with a newline',
      '[http]\ncors_origins = "https://a.example\\r\\nx-evil: 1"\n',
      {},
      /http\.cors_origins .*expected "\*" or one origin/,
    ],
  ];
  it.each(cases)('%s', (_name, text, env, message) => {
    const e = refusal(() => load(text, env));
    expect(e.phase).toBe('load_config');
    expect(e.message).toMatch(message);
    expect(e.message).not.toMatch(/bogus|verbose|quic|abc|MIGHAgEAMBMG|evil/);
  });

  it('every problem of every layer at once', () => {
    const e = refusal(() =>
      load('[limits]\nmax_memory_bytes = -5\n[proxy]\nforwarded_headers = "bogus"\n', {
        DS_SERVER__PORT: '1',
      }),
    );
    expect(e.problems).toHaveLength(3);
    expect(e.message).toMatch(/^\[load_config\] 3 problems:\n {2}- /);
  });
});

describe('hand-built configs get the same checks (startApp never throws a TypeError)', () => {
  const base = () => defaultServerConfig();
  it.each([
    [
      'versions = 5',
      (c: any) => (c.transport.http.versions = 5),
      /transport\.http\.versions: expected a list/,
    ],
    ['proxy = 5', (c: any) => (c.proxy = 5), /proxy: expected a table, got a number/],
    [
      'stream_base_path = 5',
      (c: any) => (c.http.stream_base_path = 5),
      /http\.stream_base_path: expected a string/,
    ],
    ['an unknown key', (c: any) => (c.server.bind_adress = 'x'), /unknown key server\.bind_adress/],
    [
      'postgres without a URL',
      (c: any) => (c.storage.mode = 'postgres'),
      /storage\.mode postgres needs storage\.postgres_url/,
    ],
    [
      'postgres_url not a URL',
      (c: any) => (c.storage.postgres_url = 'localhost:5432'),
      /storage\.postgres_url: expected empty, or a postgres:\/\//,
    ],
    [
      'a misspelt postgres key',
      (c: any) => (c.storage.postgres_uri = 'postgres://x/y'),
      /unknown key storage\.postgres_uri/,
    ],
  ])('%s', async (_name, patch, message) => {
    const c = base() as ServerConfig;
    patch(c);
    const { problems } = checkConfig(c);
    expect(problems.join('\n')).toMatch(message);
    await expect(startApp(c, () => {})).rejects.toMatchObject({ phase: 'validate_config' });
  });
});

describe('the schema is the one source', () => {
  it('every key has a DS_* variable, a doc and (but TLS paths, header name) a default', () => {
    for (const k of CONFIG_KEYS) {
      expect(k.env).toBe(`DS_${k.key.toUpperCase().replace(/\./g, '__')}`);
      expect(k.doc.length).toBeGreaterThan(5);
      if (!/_path$|header_name$/.test(k.key)) expect(k.default).not.toBeUndefined();
    }
    expect(defaultServerConfig().server.bind_address).toBe('0.0.0.0:4437');
  });

  it('every key can be set from its variable', () => {
    const sample: Record<string, string> = {
      string: 'x',
      number: '7',
      boolean: 'true',
      list: '',
    };
    for (const k of CONFIG_KEYS) {
      if (
        k.kind === 'choice' ||
        k.key.endsWith('_path') ||
        k.key.includes('cors') ||
        k.key.includes('base_path') ||
        k.key.includes('bind') ||
        k.key.includes('rust_log') ||
        k.key.includes('data_dir') ||
        k.key.includes('postgres_url')
      )
        continue;
      const c = loadConfig({ configDir: none, env: { [k.env]: sample[k.kind]! } });
      const value = k.key.split('.').reduce<any>((o, p) => o[p], c);
      expect(value, k.key).toEqual(
        k.kind === 'number' ? 7 : k.kind === 'boolean' ? true : k.kind === 'list' ? [] : 'x',
      );
    }
  });
});

describe('binding beyond loopback with CORS * warns', () => {
  it.each([
    ['0.0.0.0:0', '*', true],
    ['127.0.0.1:0', '*', false],
    ['0.0.0.0:0', 'https://app.example', false],
  ])('%s with cors %s: warning %s', async (bind, cors, warns) => {
    const lines: Array<{ level: string; message: unknown }> = [];
    const app = await startApp(
      loadConfig({
        configDir: none,
        env: { DS_SERVER__BIND_ADDRESS: bind, DS_HTTP__CORS_ORIGINS: cors },
      }),
      (level, fields) => lines.push({ level, message: fields.message }),
    );
    await app.close();
    const warning = lines.find((l) => l.level === 'warn' && /cors_origins/.test(String(l.message)));
    expect(Boolean(warning)).toBe(warns);
  });
});

describe('a TOML syntax error never quotes its line', () => {
  const text = '[db]\ndb_password = "hunter2" x\n';
  it('loadConfig: the file, line and column, and what was expected', () => {
    const e = refusal(() => load(text));
    expect(e.message).toMatch(
      /c\d+\.toml is not valid TOML: each key-value declaration must be followed by an end-of-line \(line 2, column \d+\)/,
    );
    expect(inspect(e, { depth: 10 })).not.toContain('hunter2');
  });

  it('ConfigProvider with smol-toml as parse: ERR_CONFIG_INVALID without the line', async () => {
    const config = new ConfigProvider({ parse: (t: string) => parseToml(t) });
    const error = await config.reload(text).catch((e: unknown) => e as Error & { code: string });
    expect(error.code).toBe('ERR_CONFIG_INVALID');
    expect(error.message).toMatch(/line 2, column \d+/);
    for (const t of [error.message, inspect(error, { depth: 10 }), JSON.stringify(error)])
      expect(t).not.toContain('hunter2');
  });
});
