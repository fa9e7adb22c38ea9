/**
 * A small HTTP proxy for fleet tests: every request goes to the next target in turn (so a
 * test's consecutive requests alternate instances), streamed both ways (SSE included); a
 * target that refuses the connection is skipped for the next one (failover after a kill).
 */
import { once } from 'node:events';
import { Agent, createServer, type IncomingMessage, request, type Server } from 'node:http';

export interface RoundRobin {
  url: string;
  /** Requests sent to each target so far. */
  counts: number[];
  close(): Promise<void>;
}

/** `failover`: always the first target that takes the connection (else each in turn). */
export async function roundRobin(
  targets: string[],
  { failover = false }: { failover?: boolean } = {},
): Promise<RoundRobin> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const counts = targets.map(() => 0);
  let next = 0;
  const server: Server = createServer((req, res) => {
    const first = failover ? 0 : next++ % targets.length;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => forward(0));
    const forward = (tried: number) => {
      const i = (first + tried) % targets.length;
      const target = new URL(targets[i]!);
      const up = request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
          agent,
        },
        (upRes: IncomingMessage) => {
          counts[i]!++;
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          res.on('close', () => upRes.destroy());
        },
      );
      up.on('error', (error: NodeJS.ErrnoException) => {
        if (!res.headersSent && error.code === 'ECONNREFUSED' && tried + 1 < targets.length)
          return forward(tried + 1);
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      res.on('close', () => up.destroy());
      up.end(Buffer.concat(chunks));
    };
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: async () => {
      server.closeAllConnections();
      server.close();
      agent.destroy();
      await once(server, 'close').catch(() => {});
    },
  };
}
