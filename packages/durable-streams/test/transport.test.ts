import { connect as h2connect } from 'node:http2';
import { loadConfig, startApp, startDurableStreamsServer } from '@towerline/durable-streams';
import { CertFactory } from '@towerline/testing';
import { afterAll, describe, expect, it } from 'vitest';

const certs = new CertFactory();
const ca = certs.createCA();
const leaf = ca.issue({ commonName: 'localhost' });
afterAll(() => certs.cleanup());

/** One HTTP/2 request: status, headers, body. */
function h2(
  url: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{
  status: number;
  headers: Record<string, unknown>;
  body: string;
  alpn: string | undefined;
}> {
  return new Promise((resolve, reject) => {
    const session = h2connect(url, { ca: ca.certPem, servername: 'localhost' });
    session.once('error', reject);
    const req = session.request({
      ':method': init.method ?? 'GET',
      ':path': path,
      ...init.headers,
    });
    let body = '';
    let headers: Record<string, unknown> = {};
    req.on('response', (h) => {
      headers = h;
    });
    req.setEncoding('utf8');
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const alpn = session.alpnProtocol;
      session.close();
      resolve({ status: Number(headers[':status']), headers, body, alpn });
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('transport', () => {
  it('serves the protocol over HTTP/2 (ALPN h2) in tls mode', async () => {
    const app = await startApp(
      loadConfig({
        env: {
          DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
          DS_TRANSPORT__MODE: 'tls',
          DS_TRANSPORT__HTTP__VERSIONS: 'http1,http2',
          DS_TRANSPORT__TLS__ALPN_PROTOCOLS: 'h2,http/1.1',
          DS_TRANSPORT__TLS__CERT_PATH: leaf.certPath,
          DS_TRANSPORT__TLS__KEY_PATH: leaf.keyPath,
        },
      }),
      () => {},
    );
    try {
      const created = await h2(app.url, '/v1/stream/h2', {
        method: 'PUT',
        headers: { 'content-type': 'text/plain' },
      });
      expect(created).toMatchObject({ status: 201, alpn: 'h2' });
      expect(
        (
          await h2(app.url, '/v1/stream/h2', {
            method: 'POST',
            headers: { 'content-type': 'text/plain' },
            body: 'over h2',
          })
        ).status,
      ).toBe(204);
      const read = await h2(app.url, '/v1/stream/h2?offset=-1');
      expect(read).toMatchObject({ status: 200, body: 'over h2' });
      // SSE over HTTP/2 (frames through the response, not a socket): the stream is closed, so
      // the reply ends after the data and the closing control event.
      const closed = await h2(app.url, '/v1/stream/h2', {
        method: 'POST',
        headers: { 'content-type': 'text/plain', 'stream-closed': 'true' },
      });
      expect(closed.status).toBe(204);
      const sse = await h2(app.url, '/v1/stream/h2?offset=-1&live=sse');
      expect(sse.status).toBe(200);
      expect(sse.body).toContain('event: data\ndata:over h2\n\n');
      expect(sse.body).toContain('"streamClosed":true');
      expect(read.headers['stream-up-to-date']).toBe('true');
    } finally {
      await app.close();
    }
  });

  it('refuses appends past max_stream_bytes with 413', async () => {
    const server = await startDurableStreamsServer({ maxStreamBytes: 10 });
    try {
      const url = `${server.url}/v1/stream/small`;
      await fetch(url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
      expect(
        (
          await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'text/plain' },
            body: '12345',
          })
        ).status,
      ).toBe(204);
      const tooMuch = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: '1234567',
      });
      expect(tooMuch.status).toBe(413);
      expect(tooMuch.headers.get('content-type')).toBe('application/problem+json');
      expect(await (await fetch(`${url}?offset=-1`)).text()).toBe('12345');
    } finally {
      await server.close();
    }
  });
});
