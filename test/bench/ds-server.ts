/**
 * One server of the durable-streams bench, in its own process (its own heap and GC, its CPU time
 * measurable on its own): `towerline`, `reference` (@durable-streams/server) or `floor`
 * (node:http alone, answering with the headers ours sends and a prebuilt body — what any Node server
 * pays per request). Seeds the bench streams, sends `{ url }` over IPC, then answers every
 * `'cpu'` message with its `process.cpuUsage()`; exits on `'stop'`. Without IPC (run by hand, for
 * a profile: `node --cpu-prof --conditions=source --import tsx test/bench/ds-server.ts towerline`)
 * it prints the URL and stops on SIGTERM.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DurableStreamTestServer } from '@durable-streams/server';
import { type StorageMode, startDurableStreamsServer } from '@towerline/durable-streams';

const kind = process.argv[2];
let url: string;
let stop: () => Promise<void>;
/** Group-commit figures of our server (batches and records written), for the modes table. */
let commits = () => ({ batches: 0, records: 0 });

if (kind?.startsWith('towerline')) {
  // `towerline` is memory mode; `towerline:<mode>` another storage mode, in a fresh directory.
  const storage = (kind.split(':')[1] ?? 'memory') as StorageMode;
  const dataDir =
    storage === 'memory' || storage === 'postgres'
      ? undefined
      : mkdtempSync(join(tmpdir(), `ds-bench-${storage}-`));
  const ours = await startDurableStreamsServer({
    longPollTimeoutMs: 1_000,
    // DS_BENCH_COALESCE_MS tries another `liveCoalesceMs` than the default.
    ...(process.env.DS_BENCH_COALESCE_MS
      ? { liveCoalesceMs: Number(process.env.DS_BENCH_COALESCE_MS) }
      : {}),
    ...(process.env.DS_BENCH_COALESCE_MAX_MS
      ? { liveCoalesceMaxMs: Number(process.env.DS_BENCH_COALESCE_MAX_MS) }
      : {}),
    storage,
    ...(dataDir ? { dataDir } : {}),
    // postgres: the fleet bench names the database and a schema of its own.
    ...(storage === 'postgres'
      ? {
          postgresUrl: process.env.DS_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
          postgresSchema: process.env.DS_BENCH_PG_SCHEMA ?? 'ds_bench',
        }
      : {}),
  });
  url = ours.url;
  commits = () => ours.handler.engine.commits;
  stop = async () => {
    await ours.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
} else if (kind === 'reference') {
  // The reference server writes to SSE responses its readers have closed and throws
  // ERR_STREAM_WRITE_AFTER_END from an event handler (seen when 1,000 readers leave at once);
  // count it and keep serving, so that one bench phase cannot end the others.
  let writeAfterEnd = 0;
  process.on('uncaughtException', (error: Error & { code?: string }) => {
    if (error.code !== 'ERR_STREAM_WRITE_AFTER_END') throw error;
    if (writeAfterEnd++ === 0) console.warn('  reference server: write after end (ignored)');
  });
  const reference = new DurableStreamTestServer({
    port: 0,
    compression: false,
    longPollTimeout: 1_000,
  });
  await reference.start();
  url = reference.url;
  stop = () => reference.stop();
} else if (kind === 'floor') {
  const prebuilt = Buffer.alloc(100_000, 'x');
  const headers = {
    'access-control-allow-origin': '*',
    'access-control-expose-headers':
      'Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, etag, content-type, location, stream-sse-data-encoding',
    'x-content-type-options': 'nosniff',
    'cross-origin-resource-policy': 'cross-origin',
    'stream-next-offset': '0000000000000000_0000000000100000',
  };
  const server = createServer((req, res) => {
    if (req.url?.includes('live=sse')) {
      // An SSE response held open, headers only: what node:http itself keeps per connection.
      res.writeHead(200, { ...headers, 'content-type': 'text/event-stream' });
      res.flushHeaders();
      return;
    }
    if (req.method === 'PUT') {
      res.writeHead(201, headers);
      res.end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(200, { ...headers, 'content-type': 'text/plain' });
      res.end(prebuilt);
      return;
    }
    req.on('data', () => {});
    req.on('end', () => {
      res.writeHead(204, headers);
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  stop = async () => {
    server.closeAllConnections();
    server.close();
  };
} else {
  throw new Error(`unknown server kind ${kind}`);
}

if (kind !== 'floor') {
  const put = (path: string) =>
    fetch(`${url}/v1/stream/${path}`, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
  await put('append');
  await put('read');
  const body = 'x'.repeat(100);
  for (let i = 0; i < 1_000; i++) {
    await fetch(`${url}/v1/stream/read`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body,
    });
  }
}

if (!process.send) {
  // Run by hand (e.g. under --cpu-prof): print the URL, stop on SIGTERM or SIGINT.
  console.log(url);
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    process.once(signal, () => void stop().then(() => process.exit(0)));
} else
  process.on('message', async (m) => {
    if (m === 'cpu') process.send!({ cpu: process.cpuUsage(), commits: { ...commits() } });
    if (m === 'rss') {
      // Two full collections (run with --expose-gc), so RSS counts live memory, not garbage.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      await new Promise((r) => setTimeout(r, 50));
      gc?.();
      process.send!({ rss: process.memoryUsage().rss });
    }
    if (m === 'stop') {
      await stop();
      process.disconnect();
    }
  });
process.send?.({ url });
