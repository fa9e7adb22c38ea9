/**
 * What the postgres store refuses at start instead of waiting for: a URL node-postgres cannot
 * use, and a connect failure no retry can change (bad password, unknown role or database).
 * The messages never quote the URL, its password or the server's text (which names them).
 */
import { isIP } from 'node:net';
import type pg from 'pg';
import { StorageError } from './errors.js';

const HOSTNAME =
  /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

const invalid = (why: string, cause?: unknown) =>
  new StorageError('ERR_STORAGE_FAILED', `the PostgreSQL URL is invalid: ${why}`, { cause });

/** Throws a {@link StorageError} when `url` can never reach a server; connects to nothing. */
export function checkPgUrl(Client: typeof pg.Client, url: string): void {
  let client: pg.Client;
  try {
    client = new Client({ connectionString: url });
  } catch (error) {
    const code = (error as { code?: unknown })?.code;
    throw invalid(
      code === 'ERR_INVALID_URL' || typeof code !== 'string'
        ? 'not a URL node-postgres can parse (check the host, the port (1-65535) and the %-escapes)'
        : `a file it names could not be read (${code})`,
    );
  }
  const { host, port } = client;
  if (!(Number.isInteger(port) && port >= 1 && port <= 65_535))
    throw invalid('the port must be an integer from 1 to 65535');
  if (typeof host === 'string' && host !== '' && !host.startsWith('/')) {
    if (isIP(host) === 0 && !(host.length <= 253 && HOSTNAME.test(host)))
      throw invalid('the host is neither a host name, an IP address nor a socket directory');
  }
}

/** Connect failures that no retry can change, by SQLSTATE. */
const PERMANENT: Record<string, string> = {
  '28P01': 'password authentication failed',
  '28000': 'the role does not exist or may not connect (pg_hba.conf)',
  '3D000': 'the database does not exist',
  '42501': 'the role may not connect to the database',
};

/** Why a connect failure is permanent, or undefined when it is worth waiting out. */
export function permanentPgFailure(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== 'string') return undefined;
  const known = PERMANENT[code];
  if (known) return `${known} (SQLSTATE ${code})`;
  if (code.startsWith('28')) return `authorization refused (SQLSTATE ${code})`;
  if (code === 'ERR_INVALID_URL' || code === 'ERR_SOCKET_BAD_PORT')
    return 'the URL is invalid (check the host and the port)';
  return undefined;
}

/** A connect error's code only, for a message: node's or the SQLSTATE, never its text. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code)) return code;
  return (error as { name?: unknown })?.name === 'TimeoutError' ? 'timeout' : 'unknown';
}
