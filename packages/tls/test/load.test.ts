import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { CertFactory, type IssuedCert } from '@towerline/testing';
import { loadTlsConfig, loadTlsConfigSync, TlsState } from '@towerline/tls';
import { afterAll, describe, expect, it } from 'vitest';

const certs = new CertFactory();
afterAll(() => certs.cleanup());
const ca = certs.createCA();

/** Every way a key could leak into text. */
function expectNoKey(text: string, key: string) {
  expect(text).not.toContain('PRIVATE KEY');
  const body = key.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  for (let i = 0; i + 40 <= body.length; i += 40) expect(text).not.toContain(body.slice(i, i + 40));
}

async function failure(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

describe('loadTlsConfig: key formats', () => {
  const cases: Array<[string, IssuedCert, string?]> = [
    ['RSA PKCS#1', ca.issue({ commonName: 'a', keyType: 'rsa', keyFormat: 'pkcs1' })],
    ['RSA PKCS#8', ca.issue({ commonName: 'b', keyType: 'rsa', keyFormat: 'pkcs8' })],
    ['EC SEC1', ca.issue({ commonName: 'c', keyType: 'ec', keyFormat: 'sec1' })],
    ['EC PKCS#8', ca.issue({ commonName: 'd', keyType: 'ec', keyFormat: 'pkcs8' })],
    [
      'encrypted PKCS#8',
      ca.issue({ commonName: 'e', keyFormat: 'pkcs8-encrypted', passphrase: 'open sesame' }),
      'open sesame',
    ],
  ];
  it.each(cases)('%s, from paths and from PEM strings', async (_name, leaf, passphrase) => {
    const fromPaths = await loadTlsConfig({ cert: leaf.certPath, key: leaf.keyPath, passphrase });
    const fromPem = loadTlsConfigSync({
      cert: leaf.chainPem,
      key: leaf.keyPem,
      passphrase,
      ca: ca.certPem,
    });
    expect(fromPaths.leaf.serialNumber).toBe(leaf.serial);
    expect(fromPem.chainLength).toBe(2);
    expect(fromPem.ca).toBe(ca.certPem);
    expect(fromPaths.key).toBe(leaf.keyPem);
    // Usable as a secure context.
    expect(new TlsState(fromPaths).secureContext()).toBeDefined();
  });
});

describe('loadTlsConfig: bad input is ERR_TLS_INVALID naming the file, never the key', () => {
  const good = ca.issue({ commonName: 'good' });
  const other = ca.issue({ commonName: 'other' });
  const expired = ca.issue({
    commonName: 'expired',
    notBefore: new Date('2020-01-01T00:00:00Z'),
    notAfter: new Date('2020-02-01T00:00:00Z'),
  });
  const future = ca.issue({
    commonName: 'future',
    notBefore: new Date(Date.now() + 10 * 86_400_000),
    notAfter: new Date(Date.now() + 20 * 86_400_000),
  });
  const encrypted = ca.issue({
    commonName: 'enc',
    keyFormat: 'pkcs8-encrypted',
    passphrase: 'right',
  });
  const dir = join(certs.dir, 'bad');
  mkdirSync(dir);
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const half = good.certPem.slice(0, Math.floor(good.certPem.length / 2));

  const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
    [
      'mismatched pair',
      () => loadTlsConfig({ cert: good.certPath, key: other.keyPath }),
      /does not match/,
    ],
    [
      'expired certificate',
      () => loadTlsConfig({ cert: expired.certPath, key: expired.keyPath }),
      /expired on 2020-02-01/,
    ],
    [
      'not yet valid',
      () => loadTlsConfig({ cert: future.certPath, key: future.keyPath }),
      /not valid before/,
    ],
    [
      'garbage PEM',
      () => loadTlsConfig({ cert: file('garbage.crt', 'hello world'), key: good.keyPath }),
      /no certificate/,
    ],
    [
      'garbage inside a PEM block',
      () =>
        loadTlsConfig({
          cert: file(
            'junk.crt',
            '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n',
          ),
          key: good.keyPath,
        }),
      /cannot be parsed/,
    ],
    [
      'half-written certificate',
      () => loadTlsConfig({ cert: file('half.crt', half), key: good.keyPath }),
      /truncated/,
    ],
    [
      'empty chain',
      () => loadTlsConfig({ cert: file('empty.crt', ''), key: good.keyPath }),
      /empty chain/,
    ],
    [
      'key given as the cert',
      () => loadTlsConfig({ cert: good.keyPath, key: good.keyPath }),
      /private key where certificates/,
    ],
    [
      'missing file',
      () => loadTlsConfig({ cert: join(dir, 'nope.crt'), key: good.keyPath }),
      /nope\.crt does not exist/,
    ],
    [
      'directory instead of a file',
      () => loadTlsConfig({ cert: dir, key: good.keyPath }),
      /is a directory/,
    ],
    [
      'no passphrase',
      () => loadTlsConfig({ cert: encrypted.certPath, key: encrypted.keyPath }),
      /encrypted and no passphrase/,
    ],
    [
      'wrong passphrase',
      () =>
        loadTlsConfig({ cert: encrypted.certPath, key: encrypted.keyPath, passphrase: 'wrong' }),
      /could not be decrypted/,
    ],
    [
      'bad CA bundle',
      () => loadTlsConfig({ cert: good.certPath, key: good.keyPath, ca: file('ca.pem', 'x') }),
      /no certificate/,
    ],
  ];
  it.each(cases)('%s', async (_name, load, message) => {
    const error = await failure(load());
    expect(error.code).toBe('ERR_TLS_INVALID');
    expect(error.message).toMatch(message);
    for (const key of [good.keyPem, other.keyPem, encrypted.keyPem]) {
      expectNoKey(error.message, key);
      expectNoKey(inspect(error, { depth: 10 }), key);
      expectNoKey(JSON.stringify(error), key);
    }
    expect(inspect(error, { depth: 10 })).not.toContain('right');
  });

  it('accepts a not-yet-valid certificate under a clock that says it is valid', async () => {
    const config = await loadTlsConfig({
      cert: future.certPath,
      key: future.keyPath,
      now: () => Date.now() + 15 * 86_400_000,
    });
    expect(config.leaf.serialNumber).toBe(future.serial);
  });
});

describe('no key material in any printout', () => {
  it('a loaded config and a TlsState never show the key or the passphrase', async () => {
    const leaf = ca.issue({
      commonName: 'secret',
      keyFormat: 'pkcs8-encrypted',
      passphrase: 'hunter2-passphrase',
    });
    const config = await loadTlsConfig({
      cert: leaf.certPath,
      key: leaf.keyPath,
      passphrase: 'hunter2-passphrase',
    });
    const state = new TlsState(config);
    for (const text of [
      JSON.stringify(config),
      inspect(config, { depth: 10, showHidden: false }),
      String(config),
      `${config}`,
      JSON.stringify(state),
      inspect(state, { depth: 10 }),
      JSON.stringify({ nested: { config } }),
    ]) {
      expectNoKey(text, leaf.keyPem);
      expect(text).not.toContain('hunter2');
    }
    expect(Object.keys(config)).not.toContain('key');
    expect(JSON.stringify(config)).toContain(leaf.serial);
  });
});

describe('loadTlsConfig: an AbortSignal', () => {
  it('rejects with the signal reason before and during the reads, and changes nothing otherwise', async () => {
    const leaf = ca.issue({ commonName: 'abortable' });
    const input = { cert: leaf.certPath, key: leaf.keyPath };
    const reason = new Error('shutting down');
    await expect(loadTlsConfig(input, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    const ac = new AbortController();
    const pending = loadTlsConfig(input, { signal: ac.signal });
    ac.abort(reason); // while the files are being opened and read
    await expect(pending).rejects.toBe(reason);
    const config = await loadTlsConfig(input, { signal: new AbortController().signal });
    expect(config.leaf.serialNumber.toUpperCase()).toBe(leaf.serial);
  });
});

describe('loadTlsConfig: options and clocks of the wrong kind', () => {
  it('refuses options that are not an object, a signal that is not one, a clock that is no number', async () => {
    const leaf = ca.issue({ commonName: 'options' });
    const input = { cert: leaf.certPath, key: leaf.keyPath };
    for (const options of [null, 5, 'secret-options']) {
      const error = await failure(loadTlsConfig(input, options as never));
      expect(error.code).toBe('ERR_INVALID_ARGUMENT');
      expect(error.message).not.toContain('secret');
    }
    const badSignal = await failure(
      loadTlsConfig(input, { signal: new AbortController() as never }),
    );
    expect(badSignal.code).toBe('ERR_INVALID_ARGUMENT');
    // A clock answering NaN used to skip the validity check: an expired certificate loaded.
    for (const now of [() => Number.NaN, () => 'soon']) {
      const error = await failure(loadTlsConfig({ ...input, now: now as never }));
      expect(error.code).toBe('ERR_TLS_INVALID');
      expect(error.message).toContain('now');
      expect(() => loadTlsConfigSync({ ...input, now: now as never })).toThrow(/now/);
    }
  });
});
