import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { loadConfig, type RunningApp, STORAGE_MODES, startApp } from '@towerline/durable-streams';
import { CertFactory } from '@towerline/testing';
import { afterAll, describe } from 'vitest';

// The suite talks through global fetch; this worker trusts the test CA by not verifying at all.
// It runs in its own process (vitest forks), on 127.0.0.1 only.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
process.removeAllListeners('warning');

const certs = new CertFactory();
const leaf = certs.createCA().issue({ commonName: 'localhost' });
const apps: RunningApp[] = [];
const dirs: string[] = [];
// postgres runs the suite with two instances behind a proxy in postgres-fleet.test.ts; here the
// modes one process owns.
const MODES = STORAGE_MODES.filter((m) => m !== 'postgres');
for (const storage of MODES) {
  const dataDir = mkdtempSync(join(tmpdir(), `towerline-ds-tls-${storage}-`));
  dirs.push(dataDir);
  const config = loadConfig({
    env: {
      DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
      DS_STORAGE__MODE: storage,
      DS_STORAGE__DATA_DIR: dataDir,
      DS_TRANSPORT__MODE: 'tls',
      DS_TRANSPORT__TLS__CERT_PATH: leaf.certPath,
      DS_TRANSPORT__TLS__KEY_PATH: leaf.keyPath,
      DS_TRANSPORT__CONNECTION__LONG_POLL_TIMEOUT_SECS: '1',
      DS_OBSERVABILITY__RUST_LOG: 'off',
      // The suite checks the protocol, not overload (packages/durable-streams/test/overload.test.ts does): on a CI box
      // shared by other jobs the event loop can lag past the default 2 s, and a large payload
      // would be shed with 503 as the server is designed to.
      DS_LIMITS__MAX_EVENT_LOOP_LAG_MS: '0',
    },
  });
  apps.push(await startApp(config));
}
afterAll(async () => {
  for (const app of apps) await app.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  certs.cleanup();
});
MODES.forEach((storage, i) => {
  describe(`conformance: ${storage} over tls`, () => {
    runConformanceTests({ baseUrl: apps[i]!.url, longPollTimeoutMs: 1_000 });
  });
});
