import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';

/**
 * A `fetch` for `followStream`/`createProducer` that speaks TLS with options of your own — a
 * private CA, a client certificate for mTLS (for example `ClientTlsProvider.connectOptions()`).
 * Node's global fetch cannot take them per call.
 *
 * @example
 * ```ts
 * const fetch = tlsFetch({ ca: caPem, cert, key });
 * for await (const batch of followStream(url, { fetch })) …
 * ```
 */
export function tlsFetch(tls: ConnectionOptions | (() => ConnectionOptions) = {}): typeof fetch {
  return (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
      const headers = new Headers(init.headers ?? {});
      const body =
        init.body === undefined || init.body === null
          ? undefined
          : typeof init.body === 'string'
            ? Buffer.from(init.body)
            : Buffer.from(init.body as Uint8Array);
      if (body) headers.set('content-length', String(body.length));
      const options = {
        method: init.method ?? 'GET',
        headers: Object.fromEntries(headers),
        ...(typeof tls === 'function' ? tls() : tls),
      };
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
        const status = res.statusCode ?? 0;
        const responseHeaders = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) for (const item of v) responseHeaders.append(k, item);
          else if (v !== undefined) responseHeaders.set(k, v);
        }
        const noBody = status === 204 || status === 304 || options.method === 'HEAD';
        if (noBody) res.resume();
        resolve(
          new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
            status,
            headers: responseHeaders,
          }),
        );
      });
      const signal = init.signal;
      const onAbort = () => req.destroy(signal?.reason ?? new Error('aborted'));
      // Listened to first: destroying the request (an abort) emits 'error' at once.
      req.once('error', reject);
      if (signal?.aborted) {
        reject(signal.reason);
        req.destroy(signal.reason);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal?.removeEventListener('abort', onAbort));
      req.end(body);
    });
}
