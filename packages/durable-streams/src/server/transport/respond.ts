/**
 * Writing responses: CORS and browser-safety headers on every response, problem+json for
 * every refusal, `Retry-After` on every 503/429. Headers travel as flat lists, so a response
 * costs one array, not an object spread per header set.
 */
import type { ServerResponse } from 'node:http';
import { type HeaderList, type Problem, problemBody } from '../protocol/problem.js';

const EXPOSE = [
  'Stream-Next-Offset',
  'Stream-Cursor',
  'Stream-Up-To-Date',
  'Stream-Closed',
  'Producer-Epoch',
  'Producer-Seq',
  'Producer-Expected-Seq',
  'Producer-Received-Seq',
  'etag',
  'content-type',
  'location',
  'stream-sse-data-encoding',
  'retry-after',
].join(', ');

const ALLOW = [
  'content-type',
  'authorization',
  'if-none-match',
  'Stream-Seq',
  'Stream-TTL',
  'Stream-Expires-At',
  'Stream-Closed',
  'Producer-Id',
  'Producer-Epoch',
  'Producer-Seq',
  'Stream-Forked-From',
  'Stream-Fork-Offset',
  'Stream-Fork-Sub-Offset',
].join(', ');

export const METHODS = 'GET, POST, PUT, DELETE, HEAD, OPTIONS';

export class Responder {
  /** What a browser reads on every response (Fetch standard, CORS protocol). */
  readonly common: HeaderList;
  /** What a preflight's answer adds: the allowed methods and request headers. */
  readonly preflight: HeaderList;

  constructor(corsOrigin: string) {
    this.common = [
      'access-control-allow-origin',
      corsOrigin,
      'access-control-expose-headers',
      EXPOSE,
      'x-content-type-options',
      'nosniff',
      'cross-origin-resource-policy',
      'cross-origin',
    ];
    this.preflight = [
      'access-control-allow-methods',
      METHODS,
      'access-control-allow-headers',
      ALLOW,
      'access-control-max-age',
      '86400',
    ];
  }

  send(res: ServerResponse, status: number, headers: HeaderList, body?: Buffer | string): void {
    if (res.headersSent || res.destroyed) return;
    if (body === undefined || status === 204 || status === 304) {
      res.writeHead(status, headers.length ? this.common.concat(headers) : this.common);
      res.end();
      return;
    }
    const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    res.writeHead(status, this.common.concat(headers, ['content-length', String(length)]));
    res.end(body);
  }

  /** A reply ending with the stream's tail (appends): one header list, built once. */
  sendTail(
    res: ServerResponse,
    status: number,
    extra: HeaderList,
    tail: string,
    closed: boolean,
  ): void {
    if (res.headersSent || res.destroyed) return;
    const h = extra.length ? this.common.concat(extra) : this.common.slice();
    h.push('stream-next-offset', tail);
    if (closed) h.push('stream-closed', 'true');
    res.writeHead(status, h);
    res.end();
  }

  problem(res: ServerResponse, p: Problem): void {
    if (res.headersSent || res.destroyed) {
      if (!res.writableEnded) res.destroy();
      return;
    }
    const body = problemBody(p);
    res.writeHead(
      p.status,
      this.common.concat(p.headers, [
        'content-type',
        'application/problem+json',
        'content-length',
        String(Buffer.byteLength(body)),
      ]),
    );
    res.end(body);
  }
}
