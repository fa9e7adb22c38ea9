/**
 * Our Durable Streams server end to end: crash durability per storage mode (the server process
 * is SIGKILLed after acknowledgements), the resilient reader through drops and restarts, and
 * certificate rotation (server and mTLS client CA) while a reader follows a stream.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { backoff } from '@towerline/core';
import {
  createProducer,
  followStream,
  loadConfig,
  type StreamBatch,
  startApp,
} from '@towerline/durable-streams';
import { CertFactory, FaultProxy, freePort } from '@towerline/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

// Readers below use global fetch against a throw-away CA; this worker process skips verification.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
process.removeAllListeners('warning');

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.ts');
const root = mkdtempSync(join(tmpdir(), 'towerline-ds-server-'));
const certs = new CertFactory();
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  certs.cleanup();
});
const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});
const fast = backoff.exponentialRandom({ initial: 10, max: 200, jitter: 'decorrelated' });
const text = (batches: StreamBatch[]) =>
  batches.map((b) => Buffer.from(b.data).toString()).join('');
const quiet = () => {};

function collect(stream: AsyncIterable<StreamBatch>) {
  const batches: StreamBatch[] = [];
  const done = (async () => {
    for await (const b of stream) batches.push(b);
  })();
  return { batches, done };
}

async function spawnServer(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', cli], {
    env: { ...process.env, DS_OBSERVABILITY__RUST_LOG: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 20_000);
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('"listening"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (d) => {
      out += d;
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
  return child;
}

describe('durability: an acknowledged append survives kill -9', () => {
  for (const mode of ['file-durable', 'acid'] as const) {
    it(`${mode}`, async () => {
      const port = await freePort();
      const dataDir = join(root, `crash-${mode}`);
      const env = {
        DS_STORAGE__MODE: mode,
        DS_STORAGE__DATA_DIR: dataDir,
        DS_SERVER__BIND_ADDRESS: `127.0.0.1:${port}`,
      };
      let child = await spawnServer(env);
      closers.push(() => child.kill('SIGKILL'));
      const url = `http://127.0.0.1:${port}/v1/stream/crash`;
      expect(
        (await fetch(url, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status,
      ).toBe(201);
      const acknowledged: string[] = [];
      for (let i = 0; i < 100; i++) {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'text/plain' },
          body: `e${i};`,
        });
        if (res.status === 204) acknowledged.push(`e${i};`);
      }
      const exited = once(child, 'exit');
      child.kill('SIGKILL'); // no shutdown hook runs: only what was on disk survives
      await exited;
      child = await spawnServer(env);
      const body = await (await fetch(`${url}?offset=-1`)).text();
      expect(acknowledged).toHaveLength(100);
      expect(body).toBe(acknowledged.join(''));
    });
  }
});

describe('the resilient reader against our server', () => {
  it('file-durable: drops and a restart mid-read; output equals the appended sequence exactly', async () => {
    const port = await freePort();
    const dataDir = join(root, 'reader');
    const config = loadConfig({
      env: {
        DS_SERVER__BIND_ADDRESS: `127.0.0.1:${port}`,
        DS_STORAGE__MODE: 'file-durable',
        DS_STORAGE__DATA_DIR: dataDir,
        DS_TRANSPORT__CONNECTION__LONG_POLL_TIMEOUT_SECS: '1',
      },
    });
    let app = await startApp(config, quiet);
    closers.push(() => app.close());
    const proxy = await FaultProxy.start({ target: { port } });
    closers.push(() => proxy.close());
    const direct = `http://127.0.0.1:${port}/v1/stream/follow`;
    await fetch(direct, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    const producer = createProducer(direct, {
      contentType: 'text/plain',
      retry: { maxAttempts: 50, backoff: backoff.fixed(30) },
    });
    const reader = collect(
      followStream(`http://127.0.0.1:${proxy.port}/v1/stream/follow`, {
        policy: fast,
        live: 'sse',
      }),
    );
    const expected: string[] = [];
    for (let i = 0; i < 120; i++) {
      expected.push(`m${i};`);
      await producer.append(`m${i};`);
      if (i % 30 === 10) proxy.reset();
      if (i === 60) {
        await app.close();
        app = await startApp(config, quiet);
      }
    }
    await producer.close();
    await reader.done;
    expect(text(reader.batches)).toBe(expected.join(''));
  });
});

describe('certificates rotating under a live reader', () => {
  it('the server certificate rotates 3 times while an SSE reader follows and a producer appends: nothing lost', async () => {
    const ca = certs.createCA();
    const leaves = Array.from({ length: 4 }, (_, i) => ca.issue({ commonName: `ds-${i}` }));
    const dir = mkdtempSync(join(root, 'rot-'));
    const certPath = join(dir, 'tls.crt');
    const keyPath = join(dir, 'tls.key');
    const install = (i: number) => CertFactory.install(leaves[i]!, certPath, keyPath);
    install(0);
    const app = await startApp(
      loadConfig({
        env: {
          DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
          DS_TRANSPORT__MODE: 'tls',
          DS_TRANSPORT__HTTP__VERSIONS: 'http1,http2',
          DS_TRANSPORT__TLS__ALPN_PROTOCOLS: 'http/1.1,h2',
          DS_TRANSPORT__TLS__CERT_PATH: certPath,
          DS_TRANSPORT__TLS__KEY_PATH: keyPath,
        },
      }),
      quiet,
    );
    closers.push(() => app.close());
    let rotations = 0;
    app.tls!.events.on('rotated', () => {
      rotations++;
    });
    const url = `${app.url}/v1/stream/rotating`;
    await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' } });
    const producer = createProducer(url, { contentType: 'application/json' });
    const reader = collect(followStream(url, { live: 'sse', policy: fast }));
    const expected: unknown[] = [];
    for (let i = 0; i < 90; i++) {
      expected.push({ n: i });
      await producer.append(JSON.stringify({ n: i }));
      if (i % 30 === 15) {
        install(1 + Math.floor(i / 30));
        await new Promise((r) => setTimeout(r, 150));
      }
    }
    await producer.close();
    await reader.done;
    const received = reader.batches.flatMap((b) =>
      b.data.length ? JSON.parse(Buffer.from(b.data).toString()) : [],
    );
    expect(received).toEqual(expected);
    expect(rotations).toBe(3);
    expect(app.tls!.current.default.leaf.serialNumber).toBe(leaves[3]!.serial);
  });

  it('mTLS: the client CA rotates too; old clients are refused, new ones accepted', async () => {
    const serverCa = certs.createCA();
    const server = serverCa.issue({ commonName: 'localhost' });
    const oldCa = certs.createCA({ commonName: 'old client CA' });
    const newCa = certs.createCA({ commonName: 'new client CA' });
    const oldClient = oldCa.issue({ commonName: 'old-client' });
    const newClient = newCa.issue({ commonName: 'new-client' });
    const dir = mkdtempSync(join(root, 'mtls-'));
    const caPath = join(dir, 'client-ca.crt');
    writeFileSync(caPath, oldCa.certPem);
    const app = await startApp(
      loadConfig({
        env: {
          DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
          DS_TRANSPORT__MODE: 'mtls',
          DS_TRANSPORT__TLS__CERT_PATH: server.certPath,
          DS_TRANSPORT__TLS__KEY_PATH: server.keyPath,
          DS_TRANSPORT__TLS__CLIENT_CA_PATH: caPath,
        },
      }),
      quiet,
    );
    closers.push(() => app.close());
    const port = Number(new URL(app.url).port);
    /** Sends a request with a client certificate; the status, or 'refused'. */
    const tryAs = (identity: typeof oldClient) =>
      new Promise<string>((resolve) => {
        const s = connect({
          host: '127.0.0.1',
          port,
          cert: identity.chainPem,
          key: identity.keyPem,
          rejectUnauthorized: false,
        });
        s.once('secureConnect', () =>
          s.write('GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'),
        );
        let data = '';
        s.on('data', (d) => {
          data += d;
        });
        s.once('error', () => resolve('refused'));
        s.once('close', () => resolve(data.startsWith('HTTP/1.1 200') ? '200' : 'refused'));
      });
    expect(await tryAs(oldClient)).toBe('200');
    expect(await tryAs(newClient)).toBe('refused');
    writeFileSync(`${caPath}.tmp`, newCa.certPem);
    renameSync(`${caPath}.tmp`, caPath);
    await new Promise<void>((resolve) => app.tls!.events.once('rotated', () => resolve()));
    expect(await tryAs(newClient)).toBe('200');
    expect(await tryAs(oldClient)).toBe('refused');
  });
});
