import type { Service } from '@towerline/core';
import { parseRetryAfter } from '@towerline/retry';

/** An HTTP response the server refused, with its `Retry-After` hint (ms) if it gave one. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status}`);
  }
  get code(): string {
    return `HTTP_${this.status}`;
  }
}

/** A service that GETs `baseUrl + path` and resolves with the body, rejecting on non-2xx. */
export function httpGet(baseUrl: string): Service<string, string> {
  return {
    async call(path, ctx) {
      const res = await fetch(baseUrl + path, { signal: ctx?.signal ?? null });
      const body = await res.text();
      if (!res.ok) throw new HttpError(res.status, parseRetryAfter(res.headers.get('retry-after')));
      return body;
    },
  };
}

/** 4xx other than 408/429 will not change on a retry; everything else might. */
export const retryableHttp = (error: unknown): boolean =>
  !(error instanceof HttpError) ||
  error.status >= 500 ||
  error.status === 408 ||
  error.status === 429;

/** A short label for an error: `503`, `ECONNRESET`, … */
export function label(error: unknown): string {
  if (error instanceof HttpError) return `${error.status}`;
  const cause = (error as { cause?: { code?: string } })?.cause;
  return cause?.code ?? (error as { code?: string })?.code ?? String(error);
}
