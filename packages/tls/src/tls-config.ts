import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { inspect } from 'node:util';
import { describeValue, expectOptions, expectSignal } from '@towerline/core';
import {
  blockName,
  describeShape,
  invalid,
  isKeyLabel,
  isPlausiblePath,
  MAX_PEM_BYTES,
  type PemBlock,
  parsePem,
} from './pem.js';
import { checkChain, checkContext, opensslReason, provePair, stripped } from './prove.js';
import { readPemFile, readPemFileSync } from './read-file.js';

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
  /** The chain, leaf first, as canonical PEM (the certificate blocks only). */
  readonly cert: string;
  /** The private key as canonical PEM (non-enumerable). */
  readonly key: string;
  /** A CA bundle to verify peers with (mTLS), as canonical PEM. */
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
  /** The largest file or string accepted per part, bytes. Default 2 MiB ({@link MAX_PEM_BYTES}). */
  maxBytes?: number;
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

const oneLine = (subject: string) => subject.replace(/\n/g, ', ');

/** The certificates of a chain or bundle, parsed, with their canonical PEM. */
function parseCertificates(
  text: string,
  what: string,
  maxBytes: number,
): { certs: X509Certificate[]; pem: string } {
  const all = parsePem(text, what, maxBytes);
  if (all.some((b) => isKeyLabel(b.label))) {
    throw invalid(`${what} contains a private key where certificates were expected`);
  }
  const blocks = all.filter((b) => b.label === 'CERTIFICATE');
  if (blocks.length === 0) {
    throw invalid(
      all.length === 0
        ? `${what} contains no certificate (empty chain: no -----BEGIN CERTIFICATE----- line)`
        : `${what} contains no certificate (empty chain: only ${blockName(all[0]!.label)})`,
    );
  }
  const certs = blocks.map((b, i) => {
    try {
      return new X509Certificate(b.pem);
    } catch (error) {
      throw invalid(
        `${what}: certificate #${i + 1} (line ${b.line}) cannot be parsed (${opensslReason(error)})`,
        stripped(error),
      );
    }
  });
  return { certs, pem: blocks.map((b) => b.pem).join('') };
}

function isEncrypted(block: PemBlock): boolean {
  return (
    block.label === 'ENCRYPTED PRIVATE KEY' ||
    block.headers.some((h) => h.replace(/\s+/g, '').toUpperCase() === 'PROC-TYPE:4,ENCRYPTED')
  );
}

function parseKey(
  text: string,
  what: string,
  passphrase: string | undefined,
  maxBytes: number,
): { key: KeyObject; pem: string } {
  const all = parsePem(text, what, maxBytes);
  const keys = all.filter((b) => isKeyLabel(b.label));
  if (keys.length === 0) {
    throw invalid(
      all.some((b) => b.label === 'CERTIFICATE')
        ? `${what} contains a certificate where a private key was expected`
        : `${what} contains no private key${all.length === 0 ? ' (no -----BEGIN line)' : ''}`,
    );
  }
  if (keys.length > 1) throw invalid(`${what} contains ${keys.length} private keys; expected one`);
  const block = keys[0]!;
  const encrypted = isEncrypted(block);
  if (encrypted && !passphrase) throw invalid(`${what} is encrypted and no passphrase was given`);
  try {
    const key = createPrivateKey(
      passphrase
        ? { key: block.pem, format: 'pem', passphrase }
        : { key: block.pem, format: 'pem' },
    );
    return { key, pem: block.pem };
  } catch (error) {
    // OpenSSL's reason names a decoder step, never the key's bytes.
    throw invalid(
      encrypted
        ? `${what} could not be decrypted (wrong passphrase?)`
        : `${what} is not a valid private key (${opensslReason(error)})`,
      stripped(error),
    );
  }
}

/**
 * Checks a CA bundle (for verifying peers: mTLS client CAs, a private server CA) and returns it
 * as canonical PEM. Garbage, a key, or a bundle OpenSSL refuses is `ERR_TLS_INVALID`.
 */
export function parseCaBundle(text: string, name = 'ca bundle', maxBytes = MAX_PEM_BYTES): string {
  const { pem } = parseCertificates(text, name, maxBytes);
  try {
    createSecureContext({ ca: pem });
  } catch (error) {
    throw invalid(`OpenSSL refuses ${name} (${opensslReason(error)})`, stripped(error));
  }
  return pem;
}

/**
 * Checks PEM text (already read) and builds a {@link TlsConfig}. `names` say where each part came
 * from, for the messages. Checks: PEM well-formed and within `maxBytes`, chain not empty, key
 * parses (passphrase), key matches the leaf and signs for it, the chain's signatures hold, the
 * leaf is valid now, the CA bundle parses, and OpenSSL builds a secure context from it all.
 */
export function parseTlsConfig(
  pem: { cert: string; key: string; ca?: string | undefined; passphrase?: string | undefined },
  names: { cert: string; key: string; ca?: string } = {
    cert: 'inline cert',
    key: 'inline key',
    ca: 'inline ca',
  },
  now: () => number = Date.now,
  maxBytes: number = MAX_PEM_BYTES,
): TlsConfig {
  expectOptions(pem, false, 'pem');
  const { certs: chain, pem: certPem } = parseCertificates(pem.cert, names.cert, maxBytes);
  const leaf = chain[0]!;
  const { key, pem: keyPem } = parseKey(pem.key, names.key, pem.passphrase, maxBytes);
  provePair(key, leaf, names);
  checkChain(chain, names.cert);
  const info = describeCert(leaf);
  const t = now();
  if (typeof t !== 'number' || Number.isNaN(t))
    throw invalid(
      `now: expected a function returning wall-clock ms, it returned ${describeValue(t)}`,
    );
  if (t < info.validFrom.getTime()) {
    throw invalid(
      `${names.cert}: the certificate is not valid before ${info.validFrom.toISOString()}`,
    );
  }
  if (t > info.validTo.getTime()) {
    throw invalid(`${names.cert}: the certificate expired on ${info.validTo.toISOString()}`);
  }
  const caName = names.ca ?? 'ca';
  const caPem = pem.ca === undefined ? undefined : parseCertificates(pem.ca, caName, maxBytes).pem;
  checkContext(
    { cert: certPem, key: keyPem, ca: caPem, passphrase: pem.passphrase },
    { cert: names.cert, key: names.key, ca: caName },
  );
  return makeConfig({
    cert: certPem,
    key: keyPem,
    ca: caPem,
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
      value: () => `TlsConfig(${oneLine(config.leaf.subject)}, serial ${config.leaf.serialNumber})`,
      enumerable: false,
    },
    [inspect.custom]: { value: () => `TlsConfig ${inspect(publicView())}`, enumerable: false },
  });
  return Object.freeze(config) as TlsConfig;
}

type Part = { text: string; name: string };

/**
 * Decides how to read a part: PEM text as it is, a plausible path from disk. Anything else (PEM
 * without its BEGIN line, several lines, control bytes) is "not PEM", and is never shown.
 */
function classify(value: unknown, what: string): 'pem' | 'path' {
  if (typeof value !== 'string') {
    throw invalid(`${what} must be PEM text or a file path (got ${typeof value})`);
  }
  if (value.includes('-----BEGIN ')) return 'pem';
  if (isPlausiblePath(value)) return 'path';
  throw invalid(
    `${what} is not PEM (no -----BEGIN line) and not a file path (${describeShape(value)}, not shown)`,
  );
}

async function readPart(
  value: string,
  what: string,
  maxBytes: number,
  signal: AbortSignal | undefined,
): Promise<Part> {
  if (classify(value, what) === 'pem') return { text: value, name: `inline ${what}` };
  return readPemFile(value, what, maxBytes, signal);
}

function readPartSync(value: string, what: string, maxBytes: number): Part {
  if (classify(value, what) === 'pem') return { text: value, name: `inline ${what}` };
  return readPemFileSync(value, what, maxBytes);
}

function checkInput(input: TlsConfigInput): number {
  if (typeof input !== 'object' || input === null) {
    throw invalid('loadTlsConfig expects { cert, key, ca?, passphrase? }');
  }
  if (input.passphrase !== undefined && typeof input.passphrase !== 'string') {
    throw invalid(`passphrase must be a string (got ${typeof input.passphrase})`);
  }
  const max = input.maxBytes ?? MAX_PEM_BYTES;
  if (!(Number.isSafeInteger(max) && max > 0)) throw invalid('maxBytes must be a positive integer');
  return max;
}

/**
 * Loads and checks a certificate chain and key (and optionally a CA bundle) from paths or PEM
 * strings: RSA and EC keys in PKCS#1, PKCS#8, SEC1 and encrypted PKCS#8. The pair is proven to
 * serve (the key signs, the leaf verifies) and OpenSSL builds a context from it before it is
 * accepted. Every failure is an `ERR_TLS_INVALID` naming the file, the line and the problem,
 * never quoting the input. `signal` stops the file reads; the promise rejects with its reason.
 *
 * @example
 * ```ts
 * const config = await loadTlsConfig({ cert: '/etc/tls/tls.crt', key: '/etc/tls/tls.key' });
 * console.log(config.leaf.serialNumber, config.leaf.validTo);
 * ```
 */
export async function loadTlsConfig(
  input: TlsConfigInput,
  options: { signal?: AbortSignal } = {},
): Promise<TlsConfig> {
  expectOptions(options, true);
  const signal = expectSignal(options.signal, 'options.signal');
  signal?.throwIfAborted();
  const max = checkInput(input);
  const [cert, key, ca] = await Promise.all([
    readPart(input.cert, 'cert', max, signal),
    readPart(input.key, 'key', max, signal),
    input.ca === undefined ? undefined : readPart(input.ca, 'ca', max, signal),
  ]);
  signal?.throwIfAborted();
  return parseTlsConfig(
    { cert: cert.text, key: key.text, ca: ca?.text, passphrase: input.passphrase },
    { cert: cert.name, key: key.name, ...(ca ? { ca: ca.name } : {}) },
    input.now,
    max,
  );
}

/** {@link loadTlsConfig}, synchronously. */
export function loadTlsConfigSync(input: TlsConfigInput): TlsConfig {
  const max = checkInput(input);
  const cert = readPartSync(input.cert, 'cert', max);
  const key = readPartSync(input.key, 'key', max);
  const ca = input.ca === undefined ? undefined : readPartSync(input.ca, 'ca', max);
  return parseTlsConfig(
    { cert: cert.text, key: key.text, ca: ca?.text, passphrase: input.passphrase },
    { cert: cert.name, key: key.name, ...(ca ? { ca: ca.name } : {}) },
    input.now,
    max,
  );
}
