import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ConfigProvider } from '@towerline/config';
import { CertFactory } from '@towerline/testing';
import {
  displayPath,
  loadTlsConfig,
  loadTlsConfigSync,
  parseCaBundle,
  ServerTlsProvider,
  serverConfigFromFiles,
  type TlsServerSettings,
} from '@towerline/tls';
import { afterAll, describe, expect, it } from 'vitest';

const certs = new CertFactory();
afterAll(() => certs.cleanup());
const ca = certs.createCA();
const dir = join(certs.dir, 'refusals');
mkdirSync(dir);
const file = (name: string, text: string | Buffer) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const body = (pem: string) =>
  pem
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('');
const pemOf = (label: string, der: Buffer) =>
  `-----BEGIN ${label}-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END ${label}-----\n`;

/** A leaf signed with md5WithRSA by its own RSA CA (openssl refuses it only when it is used). */
function md5Leaf(): { cert: string; key: string } {
  const d = join(dir, 'md5');
  mkdirSync(d);
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: d, stdio: 'pipe' });
  run(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt'].concat(
      ['-subj', '/CN=md5 ca', '-days', '2'],
    ),
  );
  run(
    [
      'req',
      '-new',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'leaf.key',
      '-out',
      'leaf.csr',
    ].concat(['-subj', '/CN=md5 leaf']),
  );
  run(
    ['x509', '-req', '-md5', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key'].concat([
      '-CAcreateserial',
      '-out',
      'leaf.crt',
      '-days',
      '2',
    ]),
  );
  return { cert: join(d, 'leaf.crt'), key: join(d, 'leaf.key') };
}

async function refusal(load: () => unknown): Promise<Error & { code?: string }> {
  try {
    await load();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a refusal');
}

function expectNoKey(error: Error, keyPem: string) {
  const b = body(keyPem);
  for (const text of [error.message, inspect(error, { depth: 10 }), JSON.stringify(error)]) {
    expect(text).not.toContain('PRIVATE KEY');
    for (let i = 0; i + 16 <= b.length; i += 8) expect(text).not.toContain(b.slice(i, i + 16));
  }
}

describe('refused at load, with a reason, never with the key', () => {
  const leaf = ca.issue({ commonName: 'leaf', keyFormat: 'sec1' });
  const rsa = ca.issue({ commonName: 'rsa', keyType: 'rsa' });
  const keyDer = Buffer.from(body(leaf.keyPem), 'base64');

  const cases: Array<[string, () => unknown, RegExp, string]> = [
    [
      'a key without its BEGIN line is "not PEM", not a path',
      () => loadTlsConfig({ cert: leaf.certPem, key: leaf.keyPem.split('\n').slice(1).join('\n') }),
      /key is not PEM \(no -----BEGIN line\) and not a file path \(\d+ characters on \d+ lines, not shown\)/,
      leaf.keyPem,
    ],
    [
      'a key squashed onto one line is a path that is not shown',
      () => loadTlsConfig({ cert: leaf.certPem, key: body(leaf.keyPem) }),
      /key \(not shown: \d+ characters on 1 line\) does not exist/,
      leaf.keyPem,
    ],
    [
      'an RSA key squashed onto one line, too',
      () => loadTlsConfigSync({ cert: rsa.certPem, key: body(rsa.keyPem) }),
      /not shown/,
      rsa.keyPem,
    ],
    [
      'an EC key with one flipped bit in its private scalar',
      () => {
        const der = Buffer.from(keyDer);
        der[10]! ^= 1; // SEC1: 30 77 02 01 01 04 20 <scalar>
        return loadTlsConfig({ cert: leaf.certPem, key: pemOf('EC PRIVATE KEY', der) });
      },
      /inline key is corrupt: its signatures do not verify/,
      leaf.keyPem,
    ],
    [
      'a NUL byte before the PEM',
      () => loadTlsConfig({ cert: `\0${leaf.certPem}`, key: leaf.keyPem }),
      /inline cert line 1, column 1: binary data/,
      leaf.keyPem,
    ],
    [
      'a DER file where PEM was expected',
      () => loadTlsConfig({ cert: leaf.certPath, key: file('key.der', keyDer) }),
      /binary data where PEM text was expected \(a DER file\?/,
      leaf.keyPem,
    ],
    [
      '20,000 BEGIN lines (once quadratic)',
      () =>
        loadTlsConfig({ cert: '-----BEGIN CERTIFICATE-----\n'.repeat(20_000), key: leaf.keyPem }),
      /line 2: a BEGIN line inside the block that begins on line 1/,
      leaf.keyPem,
    ],
    [
      'a 5 MB input (once never settled)',
      () =>
        loadTlsConfig({
          cert: `-----BEGIN CERTIFICATE-----\n${'A'.repeat(5e6)}`,
          key: leaf.keyPem,
        }),
      /inline cert is 4\.8 MiB; the limit is 2\.0 MiB/,
      leaf.keyPem,
    ],
    [
      'a 5 MB file',
      () => loadTlsConfig({ cert: file('big.crt', 'x'.repeat(5e6)), key: leaf.keyPath }),
      /big\.crt is 4\.8 MiB; the limit is 2\.0 MiB/,
      leaf.keyPem,
    ],
    [
      'a label mismatch between BEGIN and END',
      () => loadTlsConfig({ cert: leaf.certPem, key: leaf.keyPem.replace('END EC', 'END RSA') }),
      /line \d+: the END line does not match the BEGIN line on line 1/,
      leaf.keyPem,
    ],
    [
      'a character outside base64 in a key',
      () => loadTlsConfig({ cert: leaf.certPem, key: leaf.keyPem.replace(/\n(.)/, '\n!') }),
      /inline key line 2, column 1: a character outside base64/,
      leaf.keyPem,
    ],
    [
      'a certificate signed with md5WithRSA',
      () => loadTlsConfig(md5Leaf()),
      /OpenSSL refuses cert .*leaf\.crt with key .*leaf\.key \(ca md too weak, ERR_SSL_CA_MD_TOO_WEAK\)/,
      leaf.keyPem,
    ],
    [
      'a chain whose leaf signature is corrupt',
      () => {
        const der = Buffer.from(body(leaf.certPem), 'base64');
        der[der.length - 5]! ^= 1; // inside the signature value
        return loadTlsConfig({ cert: pemOf('CERTIFICATE', der) + ca.certPem, key: leaf.keyPem });
      },
      /signature on certificate #1 does not verify with the key of certificate #2/,
      leaf.keyPem,
    ],
    [
      'a garbage CA bundle',
      () =>
        loadTlsConfig({ cert: leaf.certPath, key: leaf.keyPath, ca: file('ca.txt', 'garbage') }),
      /ca .*ca\.txt contains no certificate/,
      leaf.keyPem,
    ],
    [
      'a key file given as the CA bundle',
      () => loadTlsConfig({ cert: leaf.certPath, key: leaf.keyPath, ca: leaf.keyPath }),
      /contains a private key where certificates were expected/,
      leaf.keyPem,
    ],
    [
      'a certificate given as the key',
      () => loadTlsConfig({ cert: leaf.certPath, key: leaf.certPath }),
      /contains a certificate where a private key was expected/,
      leaf.keyPem,
    ],
  ];
  it.each(cases)('%s', async (_name, load, message, keyPem) => {
    const started = performance.now();
    const error = await refusal(load);
    expect(error.code).toBe('ERR_TLS_INVALID');
    expect(error.message).toMatch(message);
    expectNoKey(error, keyPem);
    // Not a timing assertion: a hang detector (the scans are linear; a loaded CI box took 1.4 s
    // here once, for a refusal that OpenSSL itself takes a while to give).
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('a FIFO is refused, not waited on', async () => {
    const fifo = join(dir, 'fifo.crt');
    execFileSync('mkfifo', [fifo]);
    const error = await refusal(() => loadTlsConfig({ cert: fifo, key: leaf.keyPath }));
    expect(error.message).toMatch(/fifo\.crt is not a regular file/);
    expect(
      (await refusal(() => loadTlsConfigSync({ cert: fifo, key: leaf.keyPath }))).message,
    ).toMatch(/not a regular file/);
  });

  it('canonical PEM: explanatory text is dropped, what was checked is what is served', async () => {
    const config = await loadTlsConfig({
      cert: `Subject: leaf\n${leaf.certPem}trailing notes\n`,
      key: `\r\n${leaf.keyPem.replace(/\n/g, '\r\n')}`,
    });
    expect(config.cert).toBe(leaf.certPem);
    expect(config.key).toBe(leaf.keyPem);
  });
});

describe('client CA bundles', () => {
  const leaf = ca.issue({ commonName: 'server' });

  it('parseCaBundle refuses garbage and returns canonical PEM', () => {
    expect(() => parseCaBundle('garbage', 'client CA')).toThrow(
      /client CA contains no certificate/,
    );
    expect(parseCaBundle(`# bundle\n${ca.certPem}`)).toBe(ca.certPem);
  });

  it('a garbage client-CA file keeps the server from starting (serverConfigFromFiles)', async () => {
    const files = serverConfigFromFiles({
      cert: leaf.certPath,
      key: leaf.keyPath,
      clientCa: file('client-ca.pem', 'not a bundle'),
    });
    const error = await refusal(() => files.start({ timeout: 5_000, failFast: true }));
    expect(error.code).toBe('ERR_CONFIG_INVALID');
    expect(String((error.cause as Error).message)).toMatch(
      /client CA .*client-ca\.pem contains no certificate/,
    );
    await files.close();
  });

  it('ServerTlsProvider refuses hand-made settings with a garbage client CA', () => {
    const settings: TlsServerSettings = {
      default: loadTlsConfigSync({ cert: leaf.certPath, key: leaf.keyPath }),
      clientCa: 'garbage',
    };
    expect(() => new ServerTlsProvider(new ConfigProvider({ initial: settings }))).toThrow(
      /client CA contains no certificate/,
    );
  });
});

describe('displayPath', () => {
  const leaf = ca.issue({ commonName: 'paths', keyType: 'rsa' });
  it.each([
    ['/etc/tls/tls.key', '/etc/tls/tls.key'],
    ['certs/server.crt', 'certs/server.crt'],
    [
      '/var/run/secrets/kubernetes.io/serviceaccount/token',
      '/var/run/secrets/kubernetes.io/serviceaccount/token',
    ],
  ])('%s is shown', (path, shown) => expect(displayPath(path)).toBe(shown));
  it('key material is not', () => {
    for (const value of [
      body(leaf.keyPem),
      leaf.keyPem,
      readFileSync(leaf.keyPath, 'utf8').slice(30),
    ])
      expect(displayPath(value)).toMatch(/^\(not shown: \d+ characters on \d+ lines?\)$/);
  });
});
