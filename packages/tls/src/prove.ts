import { type KeyObject, randomBytes, sign, verify, type X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { invalid } from './pem.js';

/** OpenSSL's reason for a refusal (`ca md too weak`), or its code: never input bytes. */
export function opensslReason(error: unknown): string {
  const e = error as { reason?: unknown; code?: unknown };
  const parts = [e?.reason, e?.code].filter((p): p is string => typeof p === 'string' && p !== '');
  return parts.length > 0 ? parts.join(', ') : 'unknown reason';
}

/** An error with only its code, reason and message, in case a library put input in other fields. */
export function stripped(error: unknown): Error {
  const e = error as { message?: string; code?: string; reason?: string };
  return Object.assign(
    new Error(String(e?.message ?? error)),
    e?.code ? { code: e.code } : {},
    e?.reason ? { reason: e.reason } : {},
  );
}

/**
 * Proves that `key` can serve `leaf`: the public halves match, and a signature made with the
 * private half verifies with the certificate's public key. The second step catches a key whose
 * private part is corrupt while its embedded public part is intact: OpenSSL loads such a key,
 * and every handshake then fails.
 */
export function provePair(
  key: KeyObject,
  leaf: X509Certificate,
  names: { cert: string; key: string },
) {
  if (!leaf.checkPrivateKey(key)) {
    throw invalid(
      `${names.key} does not match the certificate in ${names.cert} (${leaf.subject.replace(/\n/g, ', ')})`,
    );
  }
  const type: string | undefined = key.asymmetricKeyType;
  if (type === 'x25519' || type === 'x448' || type === 'dh') {
    throw invalid(`${names.key} is a ${type} key, which cannot sign: TLS needs a signing key`);
  }
  const algorithm = type === 'ed25519' || type === 'ed448' ? null : 'sha256';
  const challenge = randomBytes(32);
  let good: boolean;
  try {
    good = verify(algorithm, challenge, leaf.publicKey, sign(algorithm, challenge, key));
  } catch (error) {
    throw invalid(`${names.key} cannot sign (${opensslReason(error)})`, stripped(error));
  }
  if (!good) {
    throw invalid(
      `${names.key} is corrupt: its signatures do not verify with the public key of ${names.cert} (the private part does not match the public part)`,
    );
  }
}

/** Refuses a chain in which a certificate's issuer is present but did not sign it. */
export function checkChain(chain: X509Certificate[], what: string): void {
  for (let i = 0; i + 1 < chain.length; i++) {
    const issuer = chain[i + 1]!;
    if (chain[i]!.checkIssued(issuer) && !chain[i]!.verify(issuer.publicKey)) {
      throw invalid(
        `${what}: the signature on certificate #${i + 1} does not verify with the key of certificate #${i + 2}, its issuer (corrupt chain)`,
      );
    }
  }
}

/**
 * Builds the secure context once, inside the loader, so that whatever OpenSSL would refuse at
 * `tls.createServer` (a weak signature digest, a key it cannot use) is refused here, with
 * OpenSSL's reason.
 */
export function checkContext(
  parts: { cert: string; key: string; ca: string | undefined; passphrase: string | undefined },
  names: { cert: string; key: string; ca: string },
): void {
  const base = {
    cert: parts.cert,
    key: parts.key,
    ...(parts.passphrase ? { passphrase: parts.passphrase } : {}),
  };
  try {
    createSecureContext(parts.ca === undefined ? base : { ...base, ca: parts.ca });
  } catch (error) {
    // Attribute the refusal: when the pair alone is fine, it is the CA bundle's.
    if (parts.ca !== undefined && tryContext(base)) {
      throw invalid(`OpenSSL refuses ${names.ca} (${opensslReason(error)})`, stripped(error));
    }
    throw invalid(
      `OpenSSL refuses ${names.cert} with ${names.key} (${opensslReason(error)})`,
      stripped(error),
    );
  }
}

function tryContext(options: Parameters<typeof createSecureContext>[0]): boolean {
  try {
    createSecureContext(options);
    return true;
  } catch {
    return false;
  }
}
