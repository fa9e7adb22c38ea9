import { TowerlineError } from '@towerline/core';

/**
 * The largest PEM text a loader reads: 2 MiB. A chain with its intermediates is a few KB and a
 * large CA bundle (Mozilla's) about 220 KB; anything near the limit is a wrong file.
 */
export const MAX_PEM_BYTES = 2 * 1024 * 1024;

/** One block found in PEM text, re-emitted in canonical form (markers, headers, body). */
export interface PemBlock {
  label: string;
  /** 1-based line of its BEGIN marker. */
  line: number;
  /** RFC 1421 headers (`Proc-Type`, `DEK-Info`) of legacy encrypted keys, verbatim. */
  headers: string[];
  pem: string;
}

/** Labels that are safe to name in a message; anything else is "a block with an unknown label". */
const NAMEABLE = new Set([
  'CERTIFICATE',
  'TRUSTED CERTIFICATE',
  'X509 CRL',
  'CERTIFICATE REQUEST',
  'NEW CERTIFICATE REQUEST',
  'PUBLIC KEY',
  'RSA PUBLIC KEY',
  'PKCS7',
  'CMS',
  'DH PARAMETERS',
  'EC PARAMETERS',
]);

export const isKeyLabel = (label: string): boolean => label.endsWith('PRIVATE KEY');

/** How a message may refer to a block: never by a key's label, never by an unknown label. */
export function blockName(label: string): string {
  if (isKeyLabel(label)) return 'a private-key block';
  return NAMEABLE.has(label) ? `a ${label} block` : 'a block with an unknown label';
}

export function invalid(message: string, cause?: unknown): TowerlineError {
  return new TowerlineError('ERR_TLS_INVALID', message, cause === undefined ? {} : { cause });
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** True for A-Z a-z 0-9 + / (base64's alphabet without the padding). */
function isBase64Char(c: number): boolean {
  return (
    (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47
  );
}

/** True for a byte that never occurs in PEM text: C0 controls but tab, DEL, U+FFFD. */
const isBinary = (c: number) => (c < 32 && c !== 9 && c !== 13) || c === 127 || c === 0xfffd;

function isLabel(label: string): boolean {
  if (label.length === 0 || label.length > 64 || label.startsWith(' ') || label.endsWith(' '))
    return false;
  for (let i = 0; i < label.length; i++) {
    const c = label.charCodeAt(i);
    if (c < 32 || c > 126 || c === 45) return false;
  }
  return true;
}

interface Open {
  label: string;
  line: number;
  headers: string[];
  body: string[];
  chars: number;
  padded: boolean;
}

/**
 * Splits PEM text into blocks in one pass over its lines (RFC 7468, plus RFC 1421 headers for
 * legacy encrypted keys): no regular expression, so no input can make it backtrack. Text
 * between blocks is ignored as explanatory text. Every refusal names `what`, the line and the
 * column and what was expected; none quotes the input.
 */
export function parsePem(text: string, what: string, maxBytes = MAX_PEM_BYTES): PemBlock[] {
  if (typeof text !== 'string') {
    throw invalid(`${what} must be PEM text (got ${text === null ? 'null' : typeof text})`);
  }
  if (text.length > maxBytes) {
    throw invalid(
      `${what} is ${formatBytes(text.length)}; the limit is ${formatBytes(maxBytes)} (a certificate chain, key or CA bundle is far smaller: is it the right file?)`,
    );
  }
  const blocks: PemBlock[] = [];
  let open: Open | undefined;
  let lineNo = 0;
  for (let start = 0; start <= text.length; ) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    lineNo++;
    const where = `${what} line ${lineNo}`;
    for (let i = start; i < end; i++) {
      if (isBinary(text.charCodeAt(i))) {
        throw invalid(
          `${where}, column ${i - start + 1}: binary data where PEM text was expected${text.charCodeAt(0) === 0x30 ? ' (a DER file? convert it with openssl x509 -inform der)' : ''}`,
        );
      }
    }
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (open === undefined) {
      if (line.startsWith('-----BEGIN ')) {
        const label = line.slice(11, -5);
        if (!line.endsWith('-----') || line.length < 17 || !isLabel(label)) {
          throw invalid(`${where}: a malformed BEGIN line (expected -----BEGIN <LABEL>-----)`);
        }
        open = { label, line: lineNo, headers: [], body: [], chars: 0, padded: false };
      } else if (line.startsWith('-----END')) {
        throw invalid(`${where}: an END line without a BEGIN line before it`);
      } else if (line.includes('-----BEGIN')) {
        throw invalid(`${where}: a BEGIN marker that does not start its line`);
      }
      continue;
    }
    const inBlock = `the block that begins on line ${open.line}`;
    if (line.startsWith('-----END')) {
      if (line !== `-----END ${open.label}-----`) {
        throw invalid(`${where}: the END line does not match the BEGIN line on line ${open.line}`);
      }
      if (open.chars === 0) throw invalid(`${where}: ${inBlock} is empty`);
      if (open.chars % 4 !== 0) {
        throw invalid(
          `${where}: ${inBlock} is not valid base64 (its length is not a multiple of 4: truncated?)`,
        );
      }
      blocks.push({
        label: open.label,
        line: open.line,
        headers: open.headers,
        pem: [
          `-----BEGIN ${open.label}-----`,
          ...(open.headers.length > 0 ? [...open.headers, ''] : []),
          ...open.body,
          `-----END ${open.label}-----`,
          '',
        ].join('\n'),
      });
      open = undefined;
      continue;
    }
    if (line.includes('-----BEGIN')) {
      throw invalid(`${where}: a BEGIN line inside ${inBlock} (its END line is missing)`);
    }
    if (line === '') continue;
    if (open.body.length === 0 && line.includes(':')) {
      const colon = line.indexOf(':');
      for (let i = 0; i < colon; i++) {
        const c = line.charCodeAt(i);
        if (!((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45)) {
          throw invalid(`${where}, column ${i + 1}: a malformed header line in ${inBlock}`);
        }
      }
      open.headers.push(line);
      continue;
    }
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      const ok = c === 61 ? true : isBase64Char(c) && !open.padded;
      if (!ok) {
        throw invalid(
          `${where}, column ${i + 1}: ${open.padded ? 'data after the base64 padding' : 'a character outside base64'} in ${inBlock}`,
        );
      }
      if (c === 61) open.padded = true;
    }
    open.chars += line.length;
    open.body.push(line);
  }
  if (open !== undefined) {
    throw invalid(
      `${what} is truncated: the block that begins on line ${open.line} has no END line`,
    );
  }
  return blocks;
}

/** `n characters on m lines`: the shape of a value, never its content. */
export function describeShape(value: string): string {
  if (value.length === 0) return 'an empty string';
  let lines = 1;
  for (let i = value.indexOf('\n'); i !== -1; i = value.indexOf('\n', i + 1)) lines++;
  return `${value.length} characters on ${lines} line${lines === 1 ? '' : 's'}`;
}

/** A value that could name a file: non-empty, short, one line, no control bytes, no PEM dashes. */
export function isPlausiblePath(value: string): boolean {
  if (value.length === 0 || value.length > 4096 || value.includes('-----')) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 32 || c === 127) return false;
  }
  return true;
}

const classOf = (c: number) =>
  c >= 65 && c <= 90 ? 1 : c >= 97 && c <= 122 ? 2 : c >= 48 && c <= 57 ? 3 : 4;

/**
 * True for a path component that reads like base64 or key material rather than a name: `+` or
 * `=`, or 12+ characters that switch between upper case, lower case and digits 4+ times
 * (`ServerCert2024` switches 3 times; random base64 about 10 times in 16 characters).
 */
function looksRandom(component: string): boolean {
  let switches = 0;
  let run = 0;
  let last = 0;
  for (let i = 0; i < component.length; i++) {
    const c = component.charCodeAt(i);
    if (c === 43 || c === 61) return true;
    const k = classOf(c);
    if (k === 4) {
      run = 0;
      switches = 0;
      last = 0;
      continue;
    }
    run++;
    if (last !== 0 && k !== last) switches++;
    last = k;
    if (run >= 12 && switches >= 4) return true;
  }
  return false;
}

/**
 * A file path as a message may show it: the path itself when it is plausibly one, otherwise
 * its shape only, so that PEM or a key pasted where a path belongs is never echoed.
 *
 * @example
 * ```ts
 * displayPath('/etc/tls/tls.key'); // '/etc/tls/tls.key'
 * displayPath(keyPem.split('\n').slice(1).join('\n')); // '(not shown: 1700 characters on 27 lines)'
 * ```
 */
export function displayPath(value: string): string {
  if (typeof value !== 'string') return `(not shown: ${value === null ? 'null' : typeof value})`;
  return isPlausiblePath(value) && !value.split('/').some(looksRandom)
    ? value
    : `(not shown: ${describeShape(value)})`;
}
