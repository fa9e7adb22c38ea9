import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { loadConfig, startApp } from '@towerline/durable-streams';
import { CertFactory } from '@towerline/testing';
import { afterAll, describe } from 'vitest';

// The suite talks through global fetch; this worker trusts the test CA by not verifying at all.
// It runs in its own process (vitest forks), on 127.0.0.1 only.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
process.removeAllListeners('warning');

const certs = new CertFactory();
const leaf = certs.createCA().issue({ commonName: 'localhost' });
const config = loadConfig({
  env: {
    DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
    DS_TRANSPORT__MODE: 'tls',
    DS_TRANSPORT__TLS__CERT_PATH: leaf.certPath,
    DS_TRANSPORT__TLS__KEY_PATH: leaf.keyPath,
    DS_TRANSPORT__CONNECTION__LONG_POLL_TIMEOUT_SECS: '1',
    DS_OBSERVABILITY__RUST_LOG: 'off',
  },
});
const app = await startApp(config);
afterAll(async () => {
  await app.close();
  certs.cleanup();
});
describe('conformance: memory over tls', () => {
  runConformanceTests({ baseUrl: app.url, longPollTimeoutMs: 1_000 });
});
