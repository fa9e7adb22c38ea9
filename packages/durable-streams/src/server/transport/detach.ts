/**
 * Takes an SSE connection away from node:http once its headers are out, as node:http itself
 * does for an `upgrade`: its listeners come off the socket and its parser goes back to the
 * pool, so that the request, the response and the parser — half of what an idle connection
 * costs (about 5 KB of 10) — can be collected, and only the socket stays. The frames already
 * go to the socket as whole chunks (fanout.ts); the response then ends with the last chunk and
 * the connection is closed (no request can follow without a parser). A response someone
 * observes (a request logger, the `request` event) is kept, to finish and close as usual.
 *
 * It relies on node:http's internals (the listener names of `connectionListenerInternal`,
 * `socket.parser`, `_http_common.freeParser`), checked before anything is changed: when any of
 * them is not as expected, the connection stays with node:http and nothing is lost but memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

type FreeParser = (parser: unknown, req: IncomingMessage, socket: Socket) => void;

/** node:http's own listeners on a server socket, by event, as `connectionListenerInternal` adds them. */
const NODE_LISTENERS: Record<string, string> = {
  data: 'bound socketOnData',
  end: 'bound socketOnEnd',
  close: 'bound socketOnClose',
  drain: 'bound socketOnDrain',
  error: 'socketOnError',
  timeout: 'socketOnTimeout',
};

let freeParser: FreeParser | null | undefined;

function loadFreeParser(): FreeParser | null {
  if (freeParser !== undefined) return freeParser;
  try {
    const here = typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
    const common = createRequire(here)('_http_common') as { freeParser?: unknown };
    freeParser = typeof common.freeParser === 'function' ? (common.freeParser as FreeParser) : null;
  } catch {
    freeParser = null;
  }
  return freeParser;
}

/** The final chunk of a chunked response. */
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/**
 * Detaches `socket` (the HTTP/1.1 socket under `res`, headers flushed, nothing queued in
 * `res`) from node:http; false, changing nothing, when it cannot be done safely.
 */
export function detachSse(res: ServerResponse, socket: Socket): boolean {
  const free = loadFreeParser();
  const parser = (socket as Socket & { parser?: { incoming?: unknown } | null }).parser;
  const req = res.req;
  if (!free || !parser || parser.incoming !== req || !res.headersSent) return false;
  const found: Array<[string, (...args: unknown[]) => void]> = [];
  for (const [event, name] of Object.entries(NODE_LISTENERS)) {
    const fn = socket.listeners(event).find((l) => l.name === name);
    if (!fn) return false;
    found.push([event, fn as (...args: unknown[]) => void]);
  }
  for (const [event, fn] of found) socket.removeListener(event, fn);
  free(parser, req, socket);
  (socket as Socket & { _httpMessage?: unknown })._httpMessage = null;
  // What node:http did for this socket, now ours: errors end it, and so does the peer's FIN.
  // (Functions of the module, not closures here: a closure would keep `res` alive.)
  socket.on('error', destroyThis);
  socket.on('end', destroyThis);
  socket.resume(); // anything the client still sends is read and dropped, never buffered
  return true;
}

/**
 * Whether someone besides node:http waits for the response to finish or close (a request
 * logger, the handler's `request` event): such a response is kept, and ended as usual.
 */
export function observed(res: ServerResponse): boolean {
  const finish = res.listeners('finish').filter((l) => l.name !== 'bound resOnFinish');
  return finish.length > 0 || res.listenerCount('close') > 0;
}

function destroyThis(this: Socket): void {
  this.destroy();
}

/**
 * Ends a detached SSE response: the last chunk — through the response when it was kept, so
 * that it finishes and closes for its observers — then the connection.
 */
export function endDetached(socket: Socket, res: ServerResponse | undefined): void {
  if (socket.destroyed) return;
  if (res && !res.writableEnded) {
    // The response writes to its socket only while it is the socket's message.
    (socket as Socket & { _httpMessage?: unknown })._httpMessage = res;
    res.end();
  } else if (!res) socket.write(LAST_CHUNK);
  socket.destroySoon();
}
