import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { inspect } from 'node:util';
import { describeFileError, TowerlineError } from '@towerline/core';

/** Public facts about a certificate: safe to log. */
export interface CertificateInfo {
  subject: string;
  issuer: string;
  serialNumber: string;
  subjectAltName: string | undefined;
  validFrom: Date;
  validTo: Date;
  fingerprint256: string;
}

/**
 * A checked certificate chain and its private key. The key and passphrase are non-enumerable and
 * hidden from `JSON.stringify`, `util.inspect` and `String()`: logging a config never prints a
 * key.
 */
export interface TlsConfig {
  /** The chain, leaf first, as PEM. */
  readonly cert: string;
  /** The private key as PEM (non-enumerable). */
  readonly key: string;
  /** A CA bundle to verify peers with (mTLS), as PEM. */
  readonly ca?: string;
  /** The key's passphrase, if it is encrypted (non-enumerable). */
  readonly passphrase?: string;
  readonly leaf: CertificateInfo;
  readonly chainLength: number;
}

/** Where each part comes from: a PEM string, or a path to read. */
export interface TlsConfigInput {
  cert: string;
  key: string;
  ca?: string | undefined;
  passphrase?: string | undefined;
  /** Wall-clock ms for the validity check. Default `Date.now`. */
  now?: () => number;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const KEY_TYPES = new Set([
  'PRIVATE KEY',
  'RSA PRIVATE KEY',
  'EC PRIVATE KEY',
  'ENCRYPTED PRIVATE KEY',
]);

const isPem = (value: string) => value.includes('-----BEGIN ');

function invalid(message: string, cause?: unknown): TowerlineError {
  return new TowerlineError('ERR_TLS_INVALID', message, cause === undefined ? {} : { cause });
}

interface Block {
  type: string;
  pem: string;
}

/** Splits PEM text into blocks; anything malformed is an error naming `what`. */
function blocks(text: string, what: string): Block[] {
  const found: Block[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const body = m[2]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]+=*$/.test(body) && !m[2]!.includes(':')) {
      throw invalid(`${what}: a ${m[1]} block is not valid base64`);
    }
    found.push({ type: m[1]!, pem: m[0] });
  }
  const begins = (text.match(/-----BEGIN /g) ?? []).length;
  if (begins !== found.length) {
    throw invalid(`${what} is truncated or malformed (a BEGIN line without its END line)`);
  }
  return found;
}

function describeCert(x: X509Certificate): CertificateInfo {
  return {
    subject: x.subject,
    issuer: x.issuer,
    serialNumber: x.serialNumber,
    subjectAltName: x.subjectAltName,
    validFrom: new Date(x.validFrom),
    validTo: new Date(x.validTo),
    fingerprint256: x.fingerprint256,
  };
}

function parseCertificates(text: string, what: string): X509Certificate[] {
  const all = blocks(text, what);
  if (all.some((b) => KEY_TYPES.has(b.type))) {
    throw invalid(`${what} contains a private key where certificates were expected`);
  }
  const certs = all.filter((b) => b.type === 'CERTIFICATE');
  if (certs.length === 0) throw invalid(`${what} contains no certificate (empty chain)`);
  return certs.map((b, i) => {
    try {
      return new X509Certificate(b.pem);
    } catch (error) {
      throw invalid(`${what}: certificate #${i + 1} cannot be parsed`, error);
    }
  });
}

function parseKey(text: string, what: string, passphrase: string | undefined): KeyObject {
  const keys = blocks(text, what).filter((b) => KEY_TYPES.has(b.type));
  if (keys.length === 0) throw invalid(`${what} contains no private key`);
  if (keys.length > 1) throw invalid(`${what} contains ${keys.length} private keys; expected one`);
  const block = keys[0]!;
  const encrypted =
    block.type === 'ENCRYPTED PRIVATE KEY' || block.pem.includes('Proc-Type: 4,ENCRYPTED');
  if (encrypted && !passphrase) throw invalid(`${what} is encrypted and no passphrase was given`);
  try {
    return createPrivateKey(passphrase ? { key: block.pem, passphrase } : { key: block.pem });
  } catch (error) {
    // The cause is OpenSSL's reason code; neither it nor this message quotes the key.
    throw invalid(
      encrypted
        ? `${what} could not be decrypted (wrong passphrase?)`
        : `${what} is not a valid private key`,
      stripped(error),
    );
  }
}

/** An error with only its code and message, in case a library ever put input in other fields. */
function stripped(error: unknown): Error {
  const e = error as { message?: string; code?: string };
  return Object.assign(new Error(String(e?.message ?? error)), e?.code ? { code: e.code } : {});
}

/**
 * Checks PEM text (already read) and builds a {@link TlsConfig}. `names` say where each part came
 * from, for the messages. Checks: PEM well-formed, chain not empty, key parses (passphrase),
 * key matches the leaf, the leaf is valid now, CA bundle parses.
 */
export function parseTlsConfig(
  pem: { cert: string; key: string; ca?: string | undefined; passphrase?: string | undefined },
  names: { cert: string; key: string; ca?: string } = {
    cert: 'inline cert',
    key: 'inline key',
    ca: 'inline ca',
  },
  now: () => number = Date.now,
): TlsConfig {
  const chain = parseCertificates(pem.cert, names.cert);
  const leaf = chain[0]!;
  const key = parseKey(pem.key, names.key, pem.passphrase);
  if (!leaf.checkPrivateKey(key)) {
    throw invalid(
      `${names.key} does not match the certificate in ${names.cert} (${leaf.subject.replace(/\n/g, ', ')})`,
    );
  }
  const info = describeCert(leaf);
  const t = now();
  if (t < info.validFrom.getTime()) {
    throw invalid(
      `${names.cert}: the certificate is not valid before ${info.validFrom.toISOString()}`,
    );
  }
  if (t > info.validTo.getTime()) {
    throw invalid(`${names.cert}: the certificate expired on ${info.validTo.toISOString()}`);
  }
  if (pem.ca !== undefined) parseCertificates(pem.ca, names.ca ?? 'ca');
  return makeConfig({
    cert: pem.cert,
    key: pem.key,
    ca: pem.ca,
    passphrase: pem.passphrase,
    leaf: info,
    chainLength: chain.length,
  });
}

/** Freezes a config with its secrets non-enumerable and redacted from every printout. */
function makeConfig(parts: {
  cert: string;
  key: string;
  ca: string | undefined;
  passphrase: string | undefined;
  leaf: CertificateInfo;
  chainLength: number;
}): TlsConfig {
  const config = {
    cert: parts.cert,
    leaf: Object.freeze(parts.leaf),
    chainLength: parts.chainLength,
  } as {
    cert: string;
    ca?: string;
    leaf: CertificateInfo;
    chainLength: number;
  };
  if (parts.ca !== undefined) config.ca = parts.ca;
  const publicView = () => ({
    leaf: config.leaf,
    chainLength: config.chainLength,
    ca: config.ca === undefined ? undefined : '[ca bundle]',
    key: '[redacted]',
  });
  Object.defineProperties(config, {
    key: { value: parts.key, enumerable: false },
    passphrase: { value: parts.passphrase, enumerable: false },
    toJSON: { value: publicView, enumerable: false },
    toString: {
      value: () =>
        `TlsConfig(${config.leaf.subject.replace(/\n/g, ', ')}, serial ${config.leaf.serialNumber})`,
      enumerable: false,
    },
    [inspect.custom]: { value: () => `TlsConfig ${inspect(publicView())}`, enumerable: false },
  });
  return Object.freeze(config) as TlsConfig;
}

async function readPart(value: string, what: string): Promise<{ text: string; name: string }> {
  if (isPem(value)) return { text: value, name: `inline ${what}` };
  try {
    if ((await stat(value)).isDirectory())
      throw invalid(`${what} ${value} is a directory, not a file`);
    return { text: await readFile(value, 'utf8'), name: `${what} ${value}` };
  } catch (error) {
    throw readError(error, what, value);
  }
}

function readPartSync(value: string, what: string): { text: string; name: string } {
  if (isPem(value)) return { text: value, name: `inline ${what}` };
  try {
    if (statSync(value).isDirectory()) throw invalid(`${what} ${value} is a directory, not a file`);
    return { text: readFileSync(value, 'utf8'), name: `${what} ${value}` };
  } catch (error) {
    throw readError(error, what, value);
  }
}

function readError(error: unknown, what: string, path: string): TowerlineError {
  if (error instanceof TowerlineError) return error;
  const why = describeFileError(error);
  return invalid(`${what} ${path} ${why}`, stripped(error));
}

/**
 * Loads and checks a certificate chain and key (and optionally a CA bundle) from paths or PEM
 * strings: RSA and EC keys in PKCS#1, PKCS#8, SEC1 and encrypted PKCS#8. Every failure is an
 * `ERR_TLS_INVALID` naming the file and the problem, never the key.
 *
 * @example
 * ```ts
 * const config = await loadTlsConfig({ cert: '/etc/tls/tls.crt', key: '/etc/tls/tls.key' });
 * console.log(config.leaf.serialNumber, config.leaf.validTo);
 * ```
 */
export async function loadTlsConfig(input: TlsConfigInput): Promise<TlsConfig> {
  const [cert, key, ca] = await Promise.all([
    readPart(input.cert, 'cert'),
    readPart(input.key, 'key'),
    input.ca === undefined ? undefined : readPart(input.ca, 'ca'),
  ]);
  return parseTlsConfig(
    { cert: cert.text, key: key.text, ca: ca?.text, passphrase: input.passphrase },
    { cert: cert.name, key: key.name, ...(ca ? { ca: ca.name } : {}) },
    input.now,
  );
}

/** {@link loadTlsConfig}, synchronously. */
export function loadTlsConfigSync(input: TlsConfigInput): TlsConfig {
  const cert = readPartSync(input.cert, 'cert');
  const key = readPartSync(input.key, 'key');
  const ca = input.ca === undefined ? undefined : readPartSync(input.ca, 'ca');
  return parseTlsConfig(
    { cert: cert.text, key: key.text, ca: ca?.text, passphrase: input.passphrase },
    { cert: cert.name, key: key.name, ...(ca ? { ca: ca.name } : {}) },
    input.now,
  );
}
