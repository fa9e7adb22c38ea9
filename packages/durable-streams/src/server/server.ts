import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Engine, type EngineOptions, type StorageMode } from './engine/engine.js';
import { StreamHandler, type StreamHandlerOptions, serveRequest } from './transport/handler.js';

export interface DurableStreamsServerOptions
  extends Omit<StreamHandlerOptions, 'persistence' | 'engine'>,
    Pick<
      EngineOptions,
      | 'onCorruption'
      | 'segmentBytes'
      | 'segmentRecords'
      | 'postgresUrl'
      | 'postgresSchema'
      | 'postgresPoolSize'
    > {
  /** `memory` (default), `file-fast`, `file-durable`, `acid` or `postgres`. */
  storage?: StorageMode;
  /** Where `file-*` and `acid` keep their data. */
  dataDir?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
}

/** A running server: its URL, the handler (for embedding checks) and `close()`. */
export interface RunningServer {
  url: string;
  server: Server;
  handler: StreamHandler;
  close(): Promise<void>;
}

/**
 * Starts a Durable Streams server (plain HTTP/1.1) with `/healthz` and `/readyz` beside the
 * protocol, on the storage of `options.storage`.
 */
export async function startDurableStreamsServer(
  options: DurableStreamsServerOptions = {},
): Promise<RunningServer> {
  const engine = await Engine.open({
    mode: options.storage ?? 'memory',
    ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.onCorruption ? { onCorruption: options.onCorruption } : {}),
    ...(options.segmentBytes ? { segmentBytes: options.segmentBytes } : {}),
    ...(options.segmentRecords ? { segmentRecords: options.segmentRecords } : {}),
    ...(options.postgresUrl ? { postgresUrl: options.postgresUrl } : {}),
    ...(options.postgresSchema ? { postgresSchema: options.postgresSchema } : {}),
    ...(options.postgresPoolSize ? { postgresPoolSize: options.postgresPoolSize } : {}),
  });
  const handler = new StreamHandler({ ...options, engine });
  const server = createServer((req, res) => {
    serveRequest(handler, req, res);
  });
  server.keepAliveTimeout = 5_000;
  server.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const { address, port } = server.address() as { address: string; port: number };
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    server,
    handler,
    close: async () => {
      handler.close();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
      await engine.close();
    },
  };
}
