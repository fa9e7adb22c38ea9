import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type KeyType = 'rsa' | 'ec';
export type KeyFormat = 'pkcs1' | 'pkcs8' | 'sec1' | 'pkcs8-encrypted';

export interface IssuedCert {
  certPem: string;
  keyPem: string;
  /** Leaf followed by the issuing CA. */
  chainPem: string;
  /** As `X509Certificate.serialNumber` shows it (upper-case hex). */
  serial: string;
  certPath: string;
  keyPath: string;
  commonName: string;
}

export interface CertAuthority {
  certPem: string;
  certPath: string;
  commonName: string;
  /** Issues a leaf certificate signed by this CA. */
  issue(options: IssueOptions): IssuedCert;
}

export interface IssueOptions {
  commonName: string;
  /** DNS names and IPs; default `['localhost', '127.0.0.1']`. */
  altNames?: string[];
  keyType?: KeyType;
  /** PEM flavour of the key; `pkcs1` is RSA only, `sec1` EC only. Default `pkcs8`. */
  keyFormat?: KeyFormat;
  /** For `pkcs8-encrypted`. */
  passphrase?: string;
  /** Validity start; default one hour ago. */
  notBefore?: Date;
  /** Validity end; default in 30 days. */
  notAfter?: Date;
}

const openssl = (cwd: string, args: string[]) =>
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

/** GeneralizedTime as `openssl ca -startdate` takes it. */
const asn1Time = (d: Date) => `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;

function makeKey(type: KeyType, format: KeyFormat, passphrase: string | undefined): string {
  const { privateKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  if (format === 'pkcs1') {
    if (type !== 'rsa') throw new Error('pkcs1 keys are RSA keys');
    return privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
  }
  if (format === 'sec1') {
    if (type !== 'ec') throw new Error('sec1 keys are EC keys');
    return privateKey.export({ type: 'sec1', format: 'pem' }) as string;
  }
  if (format === 'pkcs8-encrypted') {
    return privateKey.export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: passphrase ?? 'towerline',
    }) as string;
  }
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/**
 * Makes throw-away certificates for tests with `openssl`, in a temporary directory that
 * `cleanup()` removes. Keys are generated per run and never committed.
 *
 * @example
 * ```ts
 * const certs = new CertFactory();
 * const ca = certs.createCA();
 * const leaf = ca.issue({ commonName: 'localhost', keyType: 'ec' });
 * const expired = ca.issue({ commonName: 'old', notAfter: new Date(Date.now() - 86_400_000) });
 * certs.cleanup();
 * ```
 */
export class CertFactory {
  readonly dir: string;
  #count = 0;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'towerline-certs-'));
  }

  /** A self-signed CA. */
  createCA(options: { commonName?: string; keyType?: KeyType } = {}): CertAuthority {
    const n = ++this.#count;
    const commonName = options.commonName ?? `towerline test CA ${n}`;
    const dir = join(this.dir, `ca-${n}`);
    mkdirSync(join(dir, 'newcerts'), { recursive: true });
    const keyPath = join(dir, 'ca.key');
    const certPath = join(dir, 'ca.crt');
    writeFileSync(keyPath, makeKey(options.keyType ?? 'ec', 'pkcs8', undefined), { mode: 0o600 });
    openssl(dir, [
      'req',
      '-x509',
      '-new',
      '-key',
      keyPath,
      '-subj',
      `/CN=${commonName}`,
      '-days',
      '3650',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      certPath,
    ]);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(
      join(dir, 'ca.cnf'),
      [
        '[ ca ]',
        'default_ca = towerline',
        '[ towerline ]',
        `database = ${join(dir, 'index.txt')}`,
        `new_certs_dir = ${join(dir, 'newcerts')}`,
        `serial = ${join(dir, 'serial')}`,
        `certificate = ${certPath}`,
        `private_key = ${keyPath}`,
        'default_md = sha256',
        'policy = any',
        'unique_subject = no',
        'email_in_dn = no',
        '[ any ]',
        'commonName = supplied',
        '',
      ].join('\n'),
    );
    const certPem = readFileSync(certPath, 'utf8');
    return { certPem, certPath, commonName, issue: (o) => this.#issue(dir, certPem, o) };
  }

  #issue(caDir: string, caPem: string, options: IssueOptions): IssuedCert {
    const n = ++this.#count;
    const dir = join(this.dir, `leaf-${n}`);
    mkdirSync(dir);
    const keyType = options.keyType ?? 'ec';
    const keyFormat = options.keyFormat ?? 'pkcs8';
    const keyPem = makeKey(keyType, keyFormat, options.passphrase);
    const keyPath = join(dir, 'tls.key');
    writeFileSync(keyPath, keyPem, { mode: 0o600 });
    // openssl reads the key for the CSR; hand it a plain PKCS#8 copy whatever the flavour.
    const plainKey = join(dir, 'plain.key');
    writeFileSync(
      plainKey,
      keyFormat === 'pkcs8-encrypted'
        ? openssl(dir, [
            'pkey',
            '-in',
            keyPath,
            '-passin',
            `pass:${options.passphrase ?? 'towerline'}`,
          ]).toString()
        : keyPem,
      { mode: 0o600 },
    );
    const csr = join(dir, 'req.csr');
    openssl(dir, [
      'req',
      '-new',
      '-key',
      plainKey,
      '-subj',
      `/CN=${options.commonName}`,
      '-out',
      csr,
    ]);
    rmSync(plainKey);
    const alt = (options.altNames ?? ['localhost', '127.0.0.1'])
      .map((a) => (/^[\d.]+$|:/.test(a) ? `IP:${a}` : `DNS:${a}`))
      .join(', ');
    const ext = join(dir, 'ext.cnf');
    writeFileSync(
      ext,
      [
        '[ leaf ]',
        'basicConstraints = CA:FALSE',
        'keyUsage = critical, digitalSignature, keyEncipherment',
        'extendedKeyUsage = serverAuth, clientAuth',
        ...(alt ? [`subjectAltName = ${alt}`] : []),
        '',
      ].join('\n'),
    );
    const serial = randomBytes(8).toString('hex').toUpperCase().replace(/^0/, '1');
    writeFileSync(join(caDir, 'serial'), `${serial}\n`);
    const notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
    const notAfter = options.notAfter ?? new Date(Date.now() + 30 * 86_400_000);
    const certPath = join(dir, 'tls.crt');
    openssl(dir, [
      'ca',
      '-batch',
      '-notext',
      '-config',
      join(caDir, 'ca.cnf'),
      '-extfile',
      ext,
      '-extensions',
      'leaf',
      '-startdate',
      asn1Time(notBefore),
      '-enddate',
      asn1Time(notAfter),
      '-in',
      csr,
      '-out',
      certPath,
    ]);
    const certPem = readFileSync(certPath, 'utf8');
    return {
      certPem,
      keyPem,
      chainPem: certPem + caPem,
      serial,
      certPath,
      keyPath,
      commonName: options.commonName,
    };
  }

  /**
   * Puts `leaf` in place at `certPath`/`keyPath` the way cert-manager or certbot do: write new
   * files beside the old ones, then rename the key and the certificate over them.
   */
  static install(leaf: IssuedCert, certPath: string, keyPath: string): void {
    writeFileSync(`${keyPath}.new`, leaf.keyPem, { mode: 0o600 });
    writeFileSync(`${certPath}.new`, leaf.chainPem);
    renameSync(`${keyPath}.new`, keyPath);
    renameSync(`${certPath}.new`, certPath);
  }

  /** Removes every file this factory wrote. */
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
