/**
 * A bounded-time fuzz of the HTTP surface: random methods, paths, offsets, live modes,
 * protocol headers (valid, invalid, partial), bodies (bytes, JSON, invalid JSON, nesting far
 * past the limit) and raw malformed HTTP. No request may get a 5xx, and every stream that
 * existed before reads back byte-for-byte afterwards, in memory and on disk.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningServer, startDurableStreamsServer } from '@towerline/durable-streams';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'towerline-ds-fuzz-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

/** One request; an SSE answer is cut after its status line. */
function send(port: number, agent: Agent, r: Sent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: r.method,
        path: r.path,
        // Without a length, a DELETE's body would be read as the next request.
        headers: r.body ? { ...r.headers, 'content-length': String(r.body.length) } : r.headers,
        agent,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (res.headers['content-type'] === 'text/event-stream') {
          res.destroy();
          resolve(status);
          return;
        }
        res.resume();
        res.once('end', () => resolve(status));
        res.once('error', () => resolve(status));
      },
    );
    req.once('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error(`no answer to ${r.method} ${r.path}`)));
    req.end(r.body);
  });
}

/** Every byte of a stream (page by page) and the headers that describe it. */
async function snapshot(base: string, path: string): Promise<string> {
  const head = await fetch(`${base}${path}`, { method: 'HEAD' });
  let offset = '-1';
  let body = '';
  for (let i = 0; i < 1_000; i++) {
    const res = await fetch(`${base}${path}?offset=${offset}`);
    body += Buffer.from(await res.arrayBuffer()).toString('hex');
    offset = res.headers.get('stream-next-offset') ?? '';
    if (res.headers.get('stream-up-to-date') === 'true') break;
  }
  return JSON.stringify({
    status: head.status,
    type: head.headers.get('content-type'),
    next: head.headers.get('stream-next-offset'),
    closed: head.headers.get('stream-closed'),
    body,
  });
}

const FIXED = ['/fixed-bytes', '/fixed-json', '/fixed-closed', '/fixed-fork', '/fixed-producer'];
const offset = fc.oneof(
  fc.constantFrom('-1', 'now', '', '0', '-2', 'abc', '0000000000000000_0000000000000003'),
  fc
    .bigInt({ min: 0n, max: 10n ** 20n })
    .map((n) => `0000000000000000_${String(n).padStart(16, '0')}`),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
);
const printable = fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'x'));
const headerValue = fc.oneof(
  printable,
  fc.constantFrom('0', '1', '-1', '18446744073709551616', 'true', 'false', '2030-01-01T00:00:00Z'),
);
const contentType = fc.constantFrom(
  'text/plain',
  'application/json',
  'Application/JSON; charset=utf-8',
  'application/octet-stream',
  'application/x-fuzz',
  '',
);
const nested = fc.integer({ min: 100, max: 20_000 }).map((d) => '['.repeat(d) + ']'.repeat(d));
const body = fc.oneof(
  fc.constant(undefined),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.json().map((j) => Buffer.from(j)),
  fc.array(fc.json(), { maxLength: 5 }).map((a) => Buffer.from(`[${a.join(',')}]`)),
  nested.map((s) => Buffer.from(s)),
  fc.constantFrom('{', '[1,]', '[]', '"\\ud800"', '\u00ff').map((s) => Buffer.from(s, 'latin1')),
);
const protocolHeaders = fc.record(
  {
    'content-type': contentType,
    'stream-seq': headerValue,
    'stream-ttl': headerValue,
    'stream-expires-at': headerValue,
    'stream-closed': fc.constantFrom('true', 'false', 'TRUE', 'x'),
    'producer-id': headerValue,
    'producer-epoch': headerValue,
    'producer-seq': headerValue,
    'stream-forked-from': fc.oneof(fc.constantFrom(...FIXED, '/f0', '/nope'), printable),
    'stream-fork-offset': offset,
    'stream-fork-sub-offset': headerValue,
    'if-none-match': headerValue,
  },
  { requiredKeys: [] },
);
const fuzzPath = fc.oneof(
  fc.constantFrom('/f0', '/f1', '/f2', '/f3/deep', '', '/', '//', '/%2e%2e', '/a%00b'),
  fc.string({ maxLength: 40 }).map((s) => `/${encodeURIComponent(s)}`),
);
const requestArb = fc
  .record({
    fixed: fc.boolean(),
    fixedPath: fc.constantFrom(...FIXED),
    path: fuzzPath,
    method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'),
    query: fc.record(
      {
        offset: fc.array(offset, { maxLength: 2 }),
        live: fc.constantFrom('long-poll', 'sse', 'x', ''),
        cursor: printable,
      },
      { requiredKeys: [] },
    ),
    headers: protocolHeaders,
    body,
  })
  .map(({ fixed, fixedPath, path, method, query, headers, body }): Sent => {
    const h: Record<string, string> = { ...headers };
    if (fixed) {
      // A stream that existed before may be read; a change to it must be refused.
      if (method === 'DELETE' || method === 'PATCH') method = 'GET';
      if (method === 'POST' || method === 'PUT') {
        h['content-type'] = 'application/x-fuzz';
        delete h['stream-forked-from'];
        delete h['stream-closed'];
        body ??= Buffer.from('x');
        if (method === 'POST')
          for (const k of ['producer-id', 'producer-epoch', 'producer-seq']) delete h[k];
      }
    }
    const q = new URLSearchParams();
    for (const o of query.offset ?? []) q.append('offset', decodeURIComponent(o));
    if (query.live) q.set('live', query.live);
    if (query.cursor) q.set('cursor', query.cursor);
    const search = q.toString();
    return {
      method,
      path: `/v1/stream${fixed ? fixedPath : path}${search ? `?${search}` : ''}`,
      headers: h,
      body: method === 'GET' || method === 'HEAD' ? undefined : body,
    };
  });

const RAW = [
  'GET /v1/stream/x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
  'POST /v1/stream/fixed-bytes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
  'GET /v1/stream/fixed-bytes?offset=%ZZ HTTP/1.1\r\nHost: x\r\n\r\n',
  'BREW /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n',
  `GET /v1/stream/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  'GET /v1/stream/x HTTP/9.9\r\n\r\n',
];

function raw(port: number, text: string): Promise<number> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let data = '';
    s.on('data', (d) => {
      data += d;
    });
    s.setTimeout(2_000, () => s.destroy());
    s.once('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
    s.once('error', () => {});
  });
}

describe.each(['memory', 'file-durable'] as const)('HTTP fuzz, %s', (storage) => {
  it('no 5xx; the streams that existed before are unchanged', { timeout: 120_000 }, async () => {
    const server: RunningServer = await startDurableStreamsServer({
      storage,
      ...(storage === 'memory' ? {} : { dataDir: join(root, storage) }),
      longPollTimeoutMs: 100,
      sseReconnectMs: 200,
      maxStreamBytes: 1024 * 1024,
    });
    const base = `${server.url}/v1/stream`;
    const port = Number(new URL(server.url).port);
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const put = (p: string, type: string, b?: string, extra: Record<string, string> = {}) =>
        fetch(`${base}${p}`, {
          method: 'PUT',
          headers: { 'content-type': type, ...extra },
          ...(b ? { body: b } : {}),
        });
      await put('/fixed-bytes', 'text/plain', 'abcdef');
      await put('/fixed-json', 'application/json', '[1,{"a":[2,3]},"x"]');
      await put('/fixed-closed', 'text/plain', 'done', { 'stream-closed': 'true' });
      await put('/fixed-fork', 'text/plain', 'fork-tail', {
        'stream-forked-from': '/v1/stream/fixed-bytes',
        'stream-fork-offset': '0000000000000000_0000000000000003',
      });
      await put('/fixed-producer', 'text/plain');
      for (let seq = 0; seq < 3; seq++)
        await fetch(`${base}/fixed-producer`, {
          method: 'POST',
          headers: {
            'content-type': 'text/plain',
            'producer-id': 'p',
            'producer-epoch': '0',
            'producer-seq': String(seq),
          },
          body: `p${seq};`,
        });
      const before = await Promise.all(FIXED.map((p) => snapshot(base, p)));
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(requestArb, async (r) => {
          const status = await send(port, agent, r);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          expect(status, `${r.method} ${r.path} ${JSON.stringify(r.headers)}`).toBeLessThan(500);
          expect(status).toBeGreaterThanOrEqual(200);
        }),
        { numRuns: 1_500, interruptAfterTimeLimit: 40_000 },
      );
      for (const text of RAW) expect(await raw(port, text)).toBeLessThan(500);
      expect(await Promise.all(FIXED.map((p) => snapshot(base, p)))).toEqual(before);
      // Both refusals and successes were exercised.
      expect([...statuses.keys()].some((s) => s >= 400)).toBe(true);
      expect([...statuses.keys()].some((s) => s < 300)).toBe(true);
    } finally {
      agent.destroy();
      await server.close();
    }
  });
});
