import { parseRetryAfter } from '@towerline/retry';

/** A response from a Durable Streams server that was not a success. */
export class StreamHttpError extends Error {
  override readonly name = 'StreamHttpError';
  /** `HTTP_<status>`, so logs and metrics name it without quoting the body. */
  readonly code: string;
  /** The URL without credentials or query (a token may ride in either). */
  readonly url: string;
  constructor(
    readonly status: number,
    url: string,
    /** The server's `Retry-After`, in ms, when it sent one. */
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status} from ${shownUrl(url)}`);
    this.url = shownUrl(url);
    this.code = `HTTP_${status}`;
  }

  /** 5xx, 408 and 429 may pass; other 4xx (404, 400, 409, 410) will not change on a retry. */
  get transient(): boolean {
    return this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

/** `url` as an error may show it: no user, password or query string (tokens ride there). */
export function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    const query = u.search === '' ? '' : '?…';
    return `${u.protocol}//${u.host}${u.pathname}${query}`;
  } catch {
    return '(an invalid URL)';
  }
}

/** Throws a {@link StreamHttpError} for a non-2xx response (after draining its body). */
export async function checkResponse(res: Response, url: string): Promise<void> {
  if (res.ok) return;
  await res.body?.cancel().catch(() => {});
  throw new StreamHttpError(res.status, url, parseRetryAfter(res.headers.get('retry-after')));
}

/** A response that is no answer of the protocol (`ERR_PROTOCOL`): a proxy's page, a stripped header. */
export const protocolError = (message: string): Error & { code: 'ERR_PROTOCOL' } =>
  Object.assign(new Error(message), { code: 'ERR_PROTOCOL' as const });

export const isProtocolError = (error: unknown): boolean =>
  error instanceof Error && (error as { code?: unknown }).code === 'ERR_PROTOCOL';

/** Network failures and transient HTTP statuses are worth another attempt; the rest is final. */
export function isTransient(error: unknown): boolean {
  return error instanceof StreamHttpError ? error.transient : true;
}
