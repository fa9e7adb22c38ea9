/**
 * Fuzzes the TLS loaders the way an attacker or a tired operator would: mutated PEM (bit flips,
 * lost lines, a dropped BEGIN line, DER bit flips under valid base64, swapped labels, repeated
 * markers, huge inputs, binary bytes, keys squashed to one line) through `loadTlsConfig`
 * (inline and from files), `serverConfigFromFiles` and `parseCaBundle`. Every input settles
 * within 1 s; every refusal is an `ERR_TLS_INVALID`/`ERR_CONFIG_INVALID` that quotes no key
 * byte, no "PRIVATE KEY" and no passphrase; every accepted config completes a real handshake.
 * `TOWERLINE_FUZZ_PEM_RUNS` sets the number of inputs (default 6,000, about 20 s; the closing
 * note of issue 12 quotes a 20,000-input run), `TOWERLINE_FUZZ_BUDGET_MS` the time bound.
 */
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createSecureContext, createServer } from 'node:tls';
import { inspect } from 'node:util';
import { isTowerlineError } from '@towerline/core';
import { CertFactory } from '@towerline/testing';
import {
  loadTlsConfig,
  loadTlsConfigSync,
  parseCaBundle,
  serverConfigFromFiles,
  type TlsConfig,
} from '@towerline/tls';
import fc from 'fast-check';
import { afterAll, expect, it } from 'vitest';
import { FuzzStats } from './support/fuzz-stats.js';

const RUNS = Number(process.env.TOWERLINE_FUZZ_PEM_RUNS ?? 6_000);
/** The whole run's bound: past it fast-check stops early and the counts say how far it got. */
const BUDGET_MS = Number(process.env.TOWERLINE_FUZZ_BUDGET_MS ?? 120_000);
const certs = new CertFactory();
afterAll(() => certs.cleanup());
const ca = certs.createCA();
const other = certs.createCA({ keyType: 'rsa' });
const PASS = 'fuzz-passphrase-7Hq2';
const leaves = [
  ca.issue({ commonName: 'ec-sec1', keyFormat: 'sec1' }),
  ca.issue({ commonName: 'ec-pkcs8' }),
  ca.issue({ commonName: 'rsa-pkcs1', keyType: 'rsa', keyFormat: 'pkcs1' }),
  other.issue({ commonName: 'rsa-pkcs8', keyType: 'rsa' }),
  ca.issue({ commonName: 'encrypted', keyFormat: 'pkcs8-encrypted', passphrase: PASS }),
];
const bodyOf = (pem: string) =>
  pem
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('');

/** Every 16-character run of every key's base64: none may appear in a refusal. */
const KEY_GRAMS = new Set<string>();
for (const l of leaves) {
  const b = bodyOf(l.keyPem);
  for (let i = 0; i + 16 <= b.length; i++) KEY_GRAMS.add(b.slice(i, i + 16));
}

function leaks(text: string): string | undefined {
  if (text.includes('PRIVATE KEY')) return '"PRIVATE KEY"';
  if (text.includes(PASS)) return 'the passphrase';
  for (let i = 0; i + 16 <= text.length; i++)
    if (KEY_GRAMS.has(text.slice(i, i + 16))) return 'key bytes';
  return undefined;
}

type Mutation = (text: string) => string;
const pemBlock = (label: string, der: Buffer) =>
  `-----BEGIN ${label}-----\n${
    der
      .toString('base64')
      .match(/.{1,64}/g)
      ?.join('\n') ?? ''
  }\n-----END ${label}-----\n`;

const at = (text: string, r: number) => Math.floor(r * (text.length + 1));
const lines = (text: string) => text.split('\n');
const common: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 255 })).map(
    ([r, bits]): Mutation =>
      (t) => {
        const i = Math.min(at(t, r), t.length - 1);
        return i < 0
          ? t
          : t.slice(0, i) + String.fromCharCode(t.charCodeAt(i) ^ bits) + t.slice(i + 1);
      },
  ),
  fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 200 })).map(
    ([r, n]): Mutation =>
      (t) =>
        t.slice(0, at(t, r)) + t.slice(at(t, r) + n),
  ),
  fc
    .tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.string({ unit: 'binary', maxLength: 12 }))
    .map(
      ([r, s]): Mutation =>
        (t) =>
          t.slice(0, at(t, r)) + s + t.slice(at(t, r)),
    ),
  fc.double({ min: 0, max: 1, noNaN: true }).map(
    (r): Mutation =>
      (t) =>
        t.slice(0, at(t, r)),
  ),
  fc.nat(40).map(
    (n): Mutation =>
      (t) =>
        lines(t)
          .filter((_, i) => i !== n % Math.max(1, lines(t).length))
          .join('\n'),
  ),
  fc.constant<Mutation>((t) => lines(t).slice(1).join('\n')), // the BEGIN line lost
  fc.constant<Mutation>((t) => bodyOf(t)), // squashed to one line, no markers
  fc.constant<Mutation>((t) => t.replace(/\n/g, '')),
  fc.constant<Mutation>((t) => t.replace(/\n/g, '\r\n')),
  fc.tuple(fc.nat(40), fc.integer({ min: 2, max: 60 })).map(
    ([n, k]): Mutation =>
      (t) => {
        const ls = lines(t);
        const i = n % ls.length;
        return [...ls.slice(0, i), ...new Array(k).fill(ls[i]), ...ls.slice(i + 1)].join('\n');
      },
  ),
  fc.tuple(fc.nat(4000), fc.integer({ min: 0, max: 7 })).map(
    ([n, bit]): Mutation =>
      (t) => {
        // A DER bit flip under valid base64: the shape survives, the content is corrupt.
        const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(t)?.[1];
        const der = Buffer.from(bodyOf(t), 'base64');
        if (!label || der.length === 0) return t;
        der[n % der.length]! ^= 1 << bit;
        return pemBlock(label, der);
      },
  ),
  fc
    .constantFrom(
      'CERTIFICATE',
      'PRIVATE KEY',
      'EC PRIVATE KEY',
      'X509 CRL',
      'hunter2',
      'RSA PRIVATE KEY',
    )
    .map(
      (label): Mutation =>
        (t) =>
          t.replace(/(BEGIN|END) [A-Z0-9 ]+-----/g, `$1 ${label}-----`),
    ),
  fc.string({ maxLength: 40 }).map(
    (s): Mutation =>
      (t) =>
        s + t,
  ),
  fc.string({ unit: 'grapheme', maxLength: 60 }).map(
    (s): Mutation =>
      () =>
        s,
  ), // a "path"
);
const HUGE = `-----BEGIN CERTIFICATE-----\n${'QUFB'.repeat(1_300_000)}\n`;
/** Inputs that once stalled the event loop: rare, since each is large. */
const heavy: fc.Arbitrary<Mutation> = fc.oneof(
  fc.integer({ min: 1, max: 30_000 }).map(
    (n): Mutation =>
      () =>
        '-----BEGIN CERTIFICATE-----\n'.repeat(n),
  ),
  fc.constant<Mutation>(() => HUGE),
);
/** Up to three common mutations, or one heavy input (never mutated further: it is large). */
const mutations = fc.oneof(
  { arbitrary: fc.array(common, { minLength: 0, maxLength: 3 }), weight: 30 },
  { arbitrary: heavy.map((m) => [m]), weight: 1 },
);

interface Input {
  cert: string;
  key: string;
  ca: string | undefined;
  passphrase: string | undefined;
}

const input: fc.Arbitrary<Input> = fc
  .record({
    leaf: fc.nat(leaves.length - 1),
    keyFrom: fc.option(fc.nat(leaves.length - 1), { freq: 8 }),
    part: fc.constantFrom('cert', 'key', 'key', 'ca', 'cert+key'),
    chain: fc.boolean(),
    withCa: fc.boolean(),
    passphrase: fc.constantFrom<string | undefined>(PASS, PASS, undefined, 'wrong'),
    mutations,
  })
  .map((r) => {
    const leaf = leaves[r.leaf]!;
    let cert = r.chain ? leaf.chainPem : leaf.certPem;
    let key = leaves[r.keyFrom ?? r.leaf]!.keyPem;
    let caPem = r.withCa || r.part === 'ca' ? ca.certPem : undefined;
    for (const m of r.mutations) {
      if (r.part.includes('cert')) cert = m(cert);
      if (r.part.includes('key')) key = m(key);
      if (r.part === 'ca' && caPem !== undefined) caPem = m(caPem);
    }
    return { cert, key, ca: caPem, passphrase: r.passphrase };
  });

const stats = new FuzzStats();
const accepted = new Map<string, TlsConfig>();
const keep = (config: TlsConfig) =>
  accepted.set(`${config.cert}\0${config.key}\0${config.ca ?? ''}`, config);

function checkRefusal(error: unknown, codes: string[]): void {
  expect(isTowerlineError(error), String(error)).toBe(true);
  expect(codes).toContain((error as { code: string }).code);
  for (const text of [
    (error as Error).message,
    inspect(error, { depth: 10 }),
    JSON.stringify(error),
  ]) {
    const leak = leaks(text);
    if (leak)
      throw new Error(`a refusal quotes ${leak}: ${(error as Error).message.slice(0, 200)}`);
  }
}

it(
  `${RUNS} mutated PEM inputs: each settles within 1 s, refusals are coded and quote no key, accepted ones serve`,
  async () => {
    const started = performance.now();
    const dir = join(certs.dir, 'fuzz');
    mkdirSync(dir);
    const paths = {
      cert: join(dir, 'tls.crt'),
      key: join(dir, 'tls.key'),
      ca: join(dir, 'ca.crt'),
    };
    const provider = serverConfigFromFiles({ ...paths, clientCa: paths.ca, passphrase: PASS });
    try {
      await fc.assert(
        fc.asyncProperty(input, fc.nat(99), async (x, route) => {
          if (route < 70) {
            const r = await stats.time('loadTlsConfig (inline)', () => loadTlsConfig(x));
            if (r.ok) keep(r.value);
            else checkRefusal(r.error, ['ERR_TLS_INVALID']);
          } else if (route < 85) {
            writeFileSync(paths.cert, x.cert);
            writeFileSync(paths.key, x.key);
            const r = await stats.time('loadTlsConfigSync (files)', () =>
              loadTlsConfigSync({ cert: paths.cert, key: paths.key, passphrase: x.passphrase }),
            );
            if (r.ok) keep(r.value);
            else checkRefusal(r.error, ['ERR_TLS_INVALID']);
          } else if (route < 95) {
            writeFileSync(paths.cert, x.cert);
            writeFileSync(paths.key, x.key);
            writeFileSync(paths.ca, x.ca ?? ca.certPem);
            const r = await stats.time('serverConfigFromFiles (reload)', () => provider.reload());
            if (r.ok) keep(r.value.default);
            else checkRefusal(r.error, ['ERR_CONFIG_INVALID', 'ERR_TLS_INVALID']);
          } else {
            const r = await stats.time('parseCaBundle', () => parseCaBundle(x.ca ?? x.cert));
            if (r.ok) createSecureContext({ ca: r.value });
            else checkRefusal(r.error, ['ERR_TLS_INVALID']);
          }
        }),
        {
          numRuns: RUNS,
          seed: Number(process.env.TOWERLINE_FUZZ_SEED ?? 12),
          endOnFailure: true,
          interruptAfterTimeLimit: BUDGET_MS,
          markInterruptAsFailure: false,
        },
      );
    } finally {
      await provider.close();
    }
    await handshakeAll([...accepted.values()]);
    stats.report('tls', performance.now() - started);
    expect(accepted.size).toBeGreaterThan(0);
  },
  BUDGET_MS + 60_000,
);

/**
 * One server; before each handshake `setSecureContext` installs the next accepted config (SNI
 * contexts are avoided: OpenSSL serves the default context's certificate when an SNI context
 * holds a key of another type). Each must complete a handshake presenting its own leaf.
 */
async function handshakeAll(configs: TlsConfig[]): Promise<void> {
  const options = (c: TlsConfig) => ({
    cert: c.cert,
    key: c.key,
    ...(c.passphrase ? { passphrase: c.passphrase } : {}),
    ...(c.ca ? { ca: c.ca } : {}),
  });
  const server = createServer(options(configs[0]!), (socket) => socket.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const started = performance.now();
  try {
    for (const config of configs) {
      server.setSecureContext(options(config));
      const fingerprint = await new Promise<string>((resolve, reject) => {
        const socket = connect({
          host: '127.0.0.1',
          port,
          servername: 'fuzz.test',
          rejectUnauthorized: false,
        });
        socket.once('secureConnect', () => {
          resolve(socket.getPeerCertificate().fingerprint256);
          socket.destroy();
        });
        socket.once('error', reject);
      });
      expect(fingerprint).toBe(config.leaf.fingerprint256);
    }
  } finally {
    server.close();
    await once(server, 'close');
  }
  const ms = performance.now() - started;
  stats.rows.set('handshakes (distinct accepted)', {
    tried: configs.length,
    accepted: configs.length,
    refused: 0,
    slowestMs: 0,
    totalMs: ms,
    reasons: new Map(),
  });
}
