/** CORS: every response carries what a browser reads; the preflight answer carries the rest. */
import { startDurableStreamsServer } from '@towerline/durable-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let server: Awaited<ReturnType<typeof startDurableStreamsServer>>;
beforeAll(async () => {
  server = await startDurableStreamsServer({ corsOrigin: 'https://app.example' });
});
afterAll(() => server.close());

describe('CORS', () => {
  it('a preflight is answered with the allowed methods and request headers', async () => {
    const res = await fetch(`${server.url}/v1/stream/x`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'producer-id, if-none-match',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    const allowed = res.headers.get('access-control-allow-headers')!.toLowerCase();
    for (const h of [
      'producer-id',
      'producer-epoch',
      'producer-seq',
      'stream-seq',
      'if-none-match',
    ])
      expect(allowed).toContain(h);
    expect(Number(res.headers.get('access-control-max-age'))).toBeGreaterThan(0);
  });

  it('every other response lets the page read the protocol headers, errors included', async () => {
    const created = await fetch(`${server.url}/v1/stream/cors`, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain' },
    });
    const missing = await fetch(`${server.url}/v1/stream/nope`);
    for (const res of [created, missing]) {
      expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
      const exposed = res.headers.get('access-control-expose-headers')!.toLowerCase();
      for (const h of ['stream-next-offset', 'stream-up-to-date', 'stream-cursor', 'etag'])
        expect(exposed).toContain(h);
      expect(res.headers.get('access-control-allow-methods')).toBeNull();
      await res.arrayBuffer();
    }
    expect(created.status).toBe(201);
    expect(missing.status).toBe(404);
  });
});
