/**
 * Seed 002's "Startup Failure Troubleshooting" list as a table: each listed cause, set up for
 * real, lands in its phase with a message that names it. Causes that need an unprivileged
 * process (an unreadable file, a privileged port, a storage directory without write access) run
 * the real CLI as `nobody` when the tests run as root.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, StartupError, type StartupPhase, startApp } from '@towerline/durable-streams';
import { CertFactory } from '@towerline/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './support/run-cli.js';

const root = mkdtempSync(join(tmpdir(), 'towerline-ds-trouble-'));
chmodSync(root, 0o755);
const certs = new CertFactory();
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  certs.cleanup();
});
const ca = certs.createCA();
const leaf = ca.issue({ commonName: 'localhost' });
const other = ca.issue({ commonName: 'other' });
const none = mkdtempSync(join(root, 'empty-config-'));
let n = 0;
const file = (text: string, mode = 0o644) => {
  const path = join(root, `f${++n}`);
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  return path;
};
const tls = (extra: Record<string, string> = {}) => ({
  DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
  DS_TRANSPORT__MODE: 'tls',
  DS_TRANSPORT__TLS__CERT_PATH: leaf.certPath,
  DS_TRANSPORT__TLS__KEY_PATH: leaf.keyPath,
  ...extra,
});

/** Loads and starts in-process; returns the failure's phase and message. */
async function failure(
  env: Record<string, string>,
  options: { configPath?: string; configDir?: string } = {},
): Promise<StartupError> {
  try {
    const app = await startApp(loadConfig({ configDir: none, ...options, env }), () => {});
    await app.close();
  } catch (error) {
    expect(error).toBeInstanceOf(StartupError);
    return error as StartupError;
  }
  throw new Error('expected a startup failure');
}

type Row = [cause: string, phase: StartupPhase, run: () => Promise<StartupError>, names: RegExp];

const rows: Row[] = [
  [
    'TOML syntax errors',
    'load_config',
    () => failure({}, { configPath: file('[server\nbind_address = ') }),
    /f\d+ is not valid TOML: .*\(line \d+, column \d+\)/,
  ],
  [
    '--config points at a missing file',
    'load_config',
    () => failure({}, { configPath: join(root, 'missing.toml') }),
    /--config .*missing\.toml does not exist/,
  ],
  [
    'invalid DS_* override values',
    'load_config',
    () => failure({ DS_TRANSPORT__TLS__MIN_VERSION: '1.7' }),
    /transport\.tls\.min_version \(from DS_TRANSPORT__TLS__MIN_VERSION\): expected one of "1\.2", "1\.3"/,
  ],
  [
    'a misspelt DS_* variable',
    'load_config',
    () => failure({ DS_SERVER__BIND_ADRESS: '127.0.0.1:1' }),
    /did you mean DS_SERVER__BIND_ADDRESS\?/,
  ],
  [
    'transport.mode and TLS fields do not agree',
    'validate_config',
    () => failure({ DS_TRANSPORT__MODE: 'tls' }),
    /transport\.mode tls needs transport\.tls\.cert_path/,
  ],
  [
    'transport.http.versions and transport.tls.alpn_protocols do not match',
    'validate_config',
    () => failure(tls({ DS_TRANSPORT__HTTP__VERSIONS: 'http1,http2' })),
    /alpn_protocols must include h2 for http2/,
  ],
  [
    'proxy.enabled = true without trusted_proxies',
    'validate_config',
    () => failure({ DS_PROXY__ENABLED: 'true' }),
    /proxy\.enabled needs proxy\.trusted_proxies/,
  ],
  [
    'proxy.identity.mode = "header" without transport.mode = "mtls"',
    'validate_config',
    () => failure({ DS_PROXY__IDENTITY__MODE: 'header', DS_PROXY__IDENTITY__HEADER_NAME: 'x-id' }),
    /proxy\.identity\.mode header is only allowed with transport\.mode mtls/,
  ],
  [
    'invalid server.bind_address',
    'validate_config',
    () => failure({ DS_SERVER__BIND_ADDRESS: 'nowhere' }),
    /server\.bind_address \(from DS_SERVER__BIND_ADDRESS\) must be host:port/,
  ],
  [
    'invalid base path',
    'validate_config',
    () => failure({ DS_HTTP__STREAM_BASE_PATH: 'v1/stream' }),
    /http\.stream_base_path \(from DS_HTTP__STREAM_BASE_PATH\) must be a path that starts with \//,
  ],
  [
    'invalid CIDR values',
    'validate_config',
    () => failure({ DS_PROXY__TRUSTED_PROXIES: '10.0.0.0/33' }),
    /proxy\.trusted_proxies\[0\] .*is not a valid address or CIDR/,
  ],
  [
    'cert path missing',
    'check_tls_files',
    () => failure(tls({ DS_TRANSPORT__TLS__CERT_PATH: join(root, 'nope.crt') })),
    /cert .*nope\.crt does not exist/,
  ],
  [
    'key path missing',
    'check_tls_files',
    () => failure(tls({ DS_TRANSPORT__TLS__KEY_PATH: join(root, 'nope.key') })),
    /key .*nope\.key does not exist/,
  ],
  [
    'client CA path missing',
    'check_tls_files',
    () =>
      failure(
        tls({
          DS_TRANSPORT__MODE: 'mtls',
          DS_TRANSPORT__TLS__CLIENT_CA_PATH: join(root, 'nope-ca.pem'),
        }),
      ),
    /client CA .*nope-ca\.pem does not exist/,
  ],
  [
    'path points at a directory, not a file',
    'check_tls_files',
    () => failure(tls({ DS_TRANSPORT__TLS__CERT_PATH: root })),
    /is a directory, not a file/,
  ],
  [
    'PEM file contents are malformed',
    'build_tls_context',
    () =>
      failure(
        tls({
          DS_TRANSPORT__TLS__CERT_PATH: file(
            `${leaf.certPem.slice(0, 200)}!!\n-----END CERTIFICATE-----\n`,
          ),
        }),
      ),
    /cert .*f\d+ line \d+, column \d+: a character outside base64/,
  ],
  [
    'certificate chain is empty',
    'build_tls_context',
    () => failure(tls({ DS_TRANSPORT__TLS__CERT_PATH: file('') })),
    /contains no certificate \(empty chain/,
  ],
  [
    'private key is missing',
    'build_tls_context',
    () => failure(tls({ DS_TRANSPORT__TLS__KEY_PATH: file(leaf.certPem) })),
    /key .*f\d+ contains a certificate where a private key was expected/,
  ],
  [
    'private key does not match the certificate',
    'build_tls_context',
    () => failure(tls({ DS_TRANSPORT__TLS__KEY_PATH: other.keyPath })),
    /key .*tls\.key does not match the certificate in cert/,
  ],
  [
    'client CA bundle is invalid',
    'build_tls_context',
    () =>
      failure(
        tls({
          DS_TRANSPORT__MODE: 'mtls',
          DS_TRANSPORT__TLS__CLIENT_CA_PATH: file('not a bundle'),
        }),
      ),
    /client CA .*f\d+ contains no certificate/,
  ],
  [
    'address already in use',
    'bind_listener',
    async () => {
      const taken = createServer();
      await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
      try {
        return await failure({
          DS_SERVER__BIND_ADDRESS: `127.0.0.1:${(taken.address() as { port: number }).port}`,
        });
      } finally {
        taken.close();
      }
    },
    /the address is already in use \(EADDRINUSE\)/,
  ],
  [
    'invalid bind target at runtime',
    'bind_listener',
    () => failure({ DS_SERVER__BIND_ADDRESS: '192.0.2.1:0' }),
    /cannot listen on 192\.0\.2\.1:0: the address is not on this machine \(EADDRNOTAVAIL\)/,
  ],
  [
    'storage backend initialisation failure',
    'start_server',
    () =>
      failure({
        DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
        DS_STORAGE__MODE: 'file-durable',
        DS_STORAGE__DATA_DIR: join(file('x'), 'streams'),
      }),
    /storage file-durable at /,
  ],
];

describe('seed 002 "Startup Failure Troubleshooting": each cause lands in its phase, named', () => {
  it.each(rows)('[%s] → %s', async (_cause, phase, run, names) => {
    const error = await run();
    expect(error.phase).toBe(phase);
    expect(error.message).toMatch(names);
    expect(error.message.startsWith(`[${phase}] `)).toBe(true);
    expect(error.message).toContain('likely cause:');
    expect(error.code).toMatch(/^ERR_/);
    expect(error.message).not.toContain('PRIVATE KEY');
  });
});

const asRoot = process.getuid?.() === 0;
const cli = (env: Record<string, string>) =>
  runCli([], { env, ...(asRoot ? { asUser: 65_534 } : {}) });

describe('causes that need an unprivileged process (the real CLI)', () => {
  const secure = join(root, 'secure');
  mkdirSync(secure, { mode: 0o755 });
  const cert = join(secure, 'tls.crt');
  const key = join(secure, 'tls.key');
  copyFileSync(leaf.certPath, cert);
  copyFileSync(leaf.keyPath, key);
  chmodSync(cert, 0o644);
  chmodSync(key, 0o600); // root's (or ours, then chmod 000 below)
  if (!asRoot) chmodSync(key, 0o000);
  const closed = join(root, 'closed');
  mkdirSync(closed, { mode: 0o755 });
  if (!asRoot) chmodSync(closed, 0o555);

  it.each([
    [
      'file exists but the process cannot read it',
      'check_tls_files',
      {
        DS_TRANSPORT__MODE: 'tls',
        DS_TRANSPORT__TLS__CERT_PATH: cert,
        DS_TRANSPORT__TLS__KEY_PATH: key,
        DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
      },
      /key .*tls\.key is not readable by this process/,
      2,
    ],
    [
      'insufficient privileges for the port',
      'bind_listener',
      { DS_SERVER__BIND_ADDRESS: '127.0.0.1:80' },
      /cannot listen on 127\.0\.0\.1:80: permission denied: ports below 1024 need privileges \(EACCES\)/,
      1,
    ],
    [
      'storage directory permissions',
      'start_server',
      {
        DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
        DS_STORAGE__MODE: 'file-durable',
        DS_STORAGE__DATA_DIR: join(closed, 'streams'),
      },
      /storage file-durable at .*closed\/streams/,
      1,
    ],
  ] as const)('[%s] → %s', async (_cause, phase, env, names, exitCode) => {
    const { code, stderr } = await cli(env);
    expect(stderr.startsWith(`[${phase}] `), stderr).toBe(true);
    expect(stderr).toMatch(names);
    expect(code).toBe(exitCode);
  });
});
