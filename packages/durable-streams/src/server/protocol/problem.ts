/**
 * The one error convention of the server: a decision that refuses a request is a `Problem`
 * (a status, a title for the problem+json body, and headers to send with it). Titles describe
 * the rule that was broken and never quote the request's bytes.
 */

/** Response headers as a flat list: name, value, name, value (what `writeHead` takes). */
export type HeaderList = string[];

export interface Problem {
  readonly kind: 'problem';
  readonly status: number;
  readonly title: string;
  readonly headers: HeaderList;
}

export const problem = (status: number, title: string, headers: HeaderList = []): Problem => ({
  kind: 'problem',
  status,
  title,
  headers,
});

export const isProblem = (value: unknown): value is Problem =>
  typeof value === 'object' && value !== null && (value as Problem).kind === 'problem';

/** The problem+json body of a problem (RFC 9457). */
export const problemBody = (p: Problem): string =>
  JSON.stringify({ type: 'about:blank', title: p.title, status: p.status });
