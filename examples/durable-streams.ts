/**
 * A Durable Streams server on `file-durable` storage, behind TLS: a producer appends 300
 * messages while an SSE reader follows through a fault proxy; meanwhile the certificate rotates
 * twice, the reader's connection is cut twice, and the server is stopped and started again on
 * the same data directory. The reader ends with every message once, in order.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createProducer,
  followStream,
  loadConfig,
  type RunningApp,
  startApp,
  tlsFetch,
} from '@towerline/durable-streams';
import { CertFactory, FaultProxy, freePort } from '@towerline/testing';

const certs = new CertFactory(); // throw-away CA and certificates (openssl), removed at the end
const ca = certs.createCA({ commonName: 'example CA' });
const leaves = Array.from({ length: 3 }, (_, i) => ca.issue({ commonName: `localhost #${i + 1}` }));
const certPath = join(certs.dir, 'tls.crt');
const keyPath = join(certs.dir, 'tls.key');
const install = (i: number) => CertFactory.install(leaves[i]!, certPath, keyPath);
install(0);

const started = performance.now();
const t = () => `${((performance.now() - started) / 1000).toFixed(2).padStart(5)}s`;
const dataDir = mkdtempSync(join(tmpdir(), 'towerline-ds-example-'));
const config = loadConfig({
  env: {
    DS_SERVER__BIND_ADDRESS: `127.0.0.1:${await freePort()}`,
    DS_STORAGE__MODE: 'file-durable', // group commit: acknowledged only once fdatasync returned
    DS_STORAGE__DATA_DIR: dataDir,
    DS_TRANSPORT__MODE: 'tls',
    DS_TRANSPORT__HTTP__VERSIONS: 'http1,http2',
    DS_TRANSPORT__TLS__ALPN_PROTOCOLS: 'http/1.1,h2',
    DS_TRANSPORT__TLS__CERT_PATH: certPath,
    DS_TRANSPORT__TLS__KEY_PATH: keyPath,
  },
});
const start = async (): Promise<RunningApp> => {
  const a = await startApp(config, () => {});
  a.tls!.events.on('rotated', ({ serialNumber }) =>
    console.log(`${t()} certificate rotated: serial ${serialNumber}`),
  );
  return a;
};
let app = await start();
console.log(`${t()} server ${app.url} (tls, file-durable, serial ${leaves[0]!.serial})`);

// The reader goes through a fault proxy, so that its connection can be cut.
const proxy = await FaultProxy.start({ target: { port: Number(new URL(app.url).port) } });
const fetch = tlsFetch({ ca: ca.certPem, servername: 'localhost' });
const direct = `${app.url}/v1/stream/orders`;
await fetch(direct, { method: 'PUT', headers: { 'content-type': 'application/json' } });
const producer = createProducer(direct, { contentType: 'application/json', fetch });

const reader = followStream(`https://127.0.0.1:${proxy.port}/v1/stream/orders`, {
  live: 'sse',
  fetch,
});
reader.events.on('disconnected', () => console.log(`${t()} reader lost its connection`));
reader.events.on('connected', ({ generation }) => {
  if (generation > 1) console.log(`${t()} reader reconnected, resuming at ${reader.offset}`);
});
const received: number[] = [];
const reading = (async () => {
  for await (const batch of reader) {
    if (batch.data.length)
      for (const m of JSON.parse(Buffer.from(batch.data).toString())) received.push(m.n);
  }
})();

const total = 300;
for (let n = 0; n < total; n++) {
  await producer.append(JSON.stringify({ n }));
  if (n === 80 || n === 200) {
    install(n === 80 ? 1 : 2);
    console.log(`${t()} new certificate written to disk`);
  }
  if (n === 140 || n === 250) {
    console.log(`${t()} cutting the reader's connection`);
    proxy.reset();
  }
  if (n === 180) {
    const { batches, records } = app.handler.engine.commits;
    console.log(
      `${t()} restarting the server (${records} records in ${batches} group commits so far)`,
    );
    await app.close();
    app = await start();
    const { ms, replayed } = app.handler.engine.report;
    console.log(
      `${t()} server back after ${ms.toFixed(1)} ms of recovery (${replayed} batches replayed)`,
    );
  }
  if (n % 10 === 0) await new Promise((r) => setTimeout(r, 5));
}
await producer.close();
await reading;

const complete = received.length === total && received.every((n, i) => n === i);
console.log(
  `${t()} received ${received.length} of ${total} messages, in order, ${new Set(received).size === received.length ? 'none twice' : 'DUPLICATES'}: ${complete ? 'the sequence is complete' : 'INCOMPLETE'}`,
);
await proxy.close();
await app.close();
certs.cleanup();
rmSync(dataDir, { recursive: true, force: true });
process.exitCode = complete ? 0 : 1;
