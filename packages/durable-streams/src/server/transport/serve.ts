import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StreamHandler } from './handler.js';

const HEALTH = new Set(['/healthz', '/readyz']);

/**
 * The whole server's request handler: `/healthz` and `/readyz` (503 once storage has failed)
 * first, the protocol under the handler's base path, and a problem+json 404 for anything
 * else. The health paths are answered even under a base path that covers them (`/`): there a
 * stream cannot be named `/healthz` or `/readyz`, and a write to one is refused (405).
 */
export function serveRequest(
  handler: StreamHandler,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  if (HEALTH.has(path)) {
    const base = handler.basePath;
    const covered = path === base || path.startsWith(`${base}/`);
    if (covered && req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'application/problem+json', allow: 'GET, HEAD' });
      res.end(
        JSON.stringify({
          type: 'about:blank',
          title: 'method not allowed',
          status: 405,
          detail: `${path} is the health endpoint, not a stream`,
        }),
      );
      return;
    }
    const ready = path === '/healthz' || !handler.engine.failed;
    res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: ready ? 'ok' : 'storage failed' }));
    return;
  }
  if (handler.handle(req, res)) return;
  res.writeHead(404, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ type: 'about:blank', title: 'not found', status: 404 }));
}
