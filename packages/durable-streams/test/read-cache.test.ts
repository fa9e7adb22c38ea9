/**
 * The catch-up read cache: a cached body is served only for the same stream, position and tail,
 * the byte budget holds, and every read through the server equals what was appended, whether
 * the cache is on, tiny or off.
 */
import { startDurableStreamsServer } from '@towerline/durable-streams';
import { afterEach, describe, expect, it } from 'vitest';
import { Stream } from '../src/server/engine/stream.js';
import { ReadCache } from '../src/server/transport/read-cache.js';

let ids = 0;
const stream = (path: string): Stream =>
  new Stream(
    ++ids,
    path,
    {
      contentType: 'text/plain',
      ttlSeconds: undefined,
      expiresAt: undefined,
      expiresAtText: undefined,
    },
    undefined,
    0,
  );
const read = (position: number, tail: number, size: number) => ({
  position,
  tail,
  end: tail,
  body: Buffer.alloc(size),
  etagBase: 'x',
});

describe('ReadCache', () => {
  it('hits only for the same stream, position and tail', () => {
    const cache = new ReadCache(1_000);
    const a = stream('/a');
    const b = stream('/a'); // re-created at the same path: another stream
    a.visibleTail = 10;
    b.visibleTail = 10;
    cache.set(a, read(0, 10, 10));
    expect(cache.get(a, 0)?.end).toBe(10);
    expect(cache.get(a, 5)).toBeUndefined();
    expect(cache.get(b, 0)).toBeUndefined();
    a.visibleTail = 11; // an append: the range from 0 is longer now
    expect(cache.get(a, 0)).toBeUndefined();
    cache.set(a, { ...read(0, 11, 10), end: 5 }); // a page cut by its size…
    a.visibleTail = 12;
    expect(cache.get(a, 0)?.end).toBe(5); // …is the same page after more appends
  });

  it('stays within its byte budget, evicting the least recently used first', () => {
    const cache = new ReadCache(100);
    const [a, b, c] = [stream('/a'), stream('/b'), stream('/c')];
    cache.set(a, read(0, 0, 40));
    cache.set(b, read(0, 0, 40));
    expect(cache.get(a, 0)).toBeDefined(); // a is now the most recent
    cache.set(c, read(0, 0, 40));
    expect(cache.bytes).toBe(80);
    expect(cache.get(b, 0)).toBeUndefined();
    expect(cache.get(a, 0)).toBeDefined();
    expect(cache.get(c, 0)).toBeDefined();
    cache.set(a, read(0, 0, 101)); // larger than the budget: not kept, old entry dropped
    expect(cache.get(a, 0)).toBeUndefined();
    expect(cache.bytes).toBe(40);
    cache.delete(c);
    expect(cache.bytes).toBe(0);
  });
});

describe('catch-up reads through the server', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  for (const readCacheBytes of [32 * 1024 * 1024, 64, 0]) {
    it(`equal the appended data at every offset (cache budget ${readCacheBytes} bytes)`, async () => {
      const server = await startDurableStreamsServer({ readCacheBytes, catchUpPageBytes: 50 });
      closers.push(() => server.close());
      const base = `${server.url}/v1/stream`;
      const put = (path: string, type: string) =>
        fetch(`${base}${path}`, { method: 'PUT', headers: { 'content-type': type } });
      const post = (path: string, type: string, body: string) =>
        fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
      /** Follows the stream from `offset` to its tail, reading every chunk twice. */
      const readAll = async (path: string, offset = '-1') => {
        let out = '';
        for (let i = 0; i < 100; i++) {
          const first = await fetch(`${base}${path}?offset=${offset}`);
          const again = await fetch(`${base}${path}?offset=${offset}`);
          const text = await first.text();
          expect(await again.text()).toBe(text);
          expect(again.headers.get('etag')).toBe(first.headers.get('etag'));
          out += text;
          offset = first.headers.get('stream-next-offset')!;
          if (first.headers.get('stream-up-to-date') === 'true') return { out, offset };
        }
        throw new Error('never up to date');
      };

      await put('/bytes', 'text/plain');
      let expected = '';
      for (let i = 0; i < 12; i++) {
        const chunk = `${i}:${'x'.repeat(i * 3)};`;
        expected += chunk;
        await post('/bytes', 'text/plain', chunk);
        expect((await readAll('/bytes')).out).toBe(expected);
      }
      // Reading from the middle, then after more appends from the same offset.
      const { offset } = await readAll('/bytes');
      await post('/bytes', 'text/plain', 'tail');
      expect((await readAll('/bytes', offset)).out).toBe('tail');

      // Deleted and re-created at the same path: nothing of the old stream comes back.
      await fetch(`${base}/bytes`, { method: 'DELETE' });
      await put('/bytes', 'text/plain');
      await post('/bytes', 'text/plain', 'new');
      expect((await readAll('/bytes')).out).toBe('new');

      // JSON mode: one array per read, messages in order.
      await put('/json', 'application/json');
      await post('/json', 'application/json', '[1,2]');
      const first = await (await fetch(`${base}/json?offset=-1`)).json();
      await post('/json', 'application/json', '{"a":3}');
      const second = await (await fetch(`${base}/json?offset=-1`)).json();
      expect(first).toEqual([1, 2]);
      expect(second).toEqual([1, 2, { a: 3 }]);

      // A close does not change the range but does change the answer's headers and ETag.
      const before = await fetch(`${base}/json?offset=-1`);
      await before.arrayBuffer();
      await post('/json', 'application/json', ''); // empty body without Stream-Closed: refused
      await fetch(`${base}/json`, { method: 'POST', headers: { 'stream-closed': 'true' } });
      const after = await fetch(`${base}/json?offset=-1`);
      expect(await after.json()).toEqual([1, 2, { a: 3 }]);
      expect(after.headers.get('stream-closed')).toBe('true');
      expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'));
    });
  }
});
