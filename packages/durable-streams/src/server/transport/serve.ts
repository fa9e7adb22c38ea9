import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StreamHandler } from './handler.js';

/**
 * The whole server's request handler: the protocol under the handler's base path, `/healthz`
 * and `/readyz` (503 once storage has failed), and a problem+json 404 for anything else.
 */
export function serveRequest(
  handler: StreamHandler,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  if (handler.handle(req, res)) return;
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz' || path === '/readyz') {
    const ready = path === '/healthz' || !handler.engine.failed;
    res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: ready ? 'ok' : 'storage failed' }));
    return;
  }
  res.writeHead(404, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ type: 'about:blank', title: 'not found', status: 404 }));
}
