/**
 * A local HTTP server answering every request with the test's `handler` (a proxy's page, a
 * malformed event stream, …), counting the requests it got. `closers` gets its shutdown.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export async function hostile(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  closers: Array<() => unknown>,
): Promise<{ base: string; seen: { requests: number } }> {
  const seen = { requests: 0 };
  const server: Server = createServer((req, res) => {
    seen.requests++;
    req.resume();
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  const { port } = server.address() as { port: number };
  return { base: `http://127.0.0.1:${port}`, seen };
}
