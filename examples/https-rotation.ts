/**
 * An HTTPS server whose certificate rotates from a watched directory while a client keeps
 * requesting. Prints each rotation and the serial number each request saw.
 *
 *   pnpm example examples/https-rotation.ts
 */
import { once } from 'node:events';
import { createServer, request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { CertFactory } from '@towerline/testing';
import { ServerTlsProvider, serverConfigFromFiles } from '@towerline/tls';

const certs = new CertFactory(); // throw-away CA and certificates, generated with openssl
const ca = certs.createCA({ commonName: 'example CA' });
const leaves = Array.from({ length: 4 }, (_, i) => ca.issue({ commonName: `localhost #${i + 1}` }));
const certPath = join(certs.dir, 'tls.crt');
const keyPath = join(certs.dir, 'tls.key');
/** What cert-manager or certbot would do: write new files next to the old, rename over them. */
const install = (i: number) => CertFactory.install(leaves[i]!, certPath, keyPath);
install(0);

const files = serverConfigFromFiles({ cert: certPath, key: keyPath }, { debounceMs: 20 });
await files.start({ timeout: 5_000 });
const tls = new ServerTlsProvider(files);
const started = performance.now();
const t = () => `${((performance.now() - started) / 1000).toFixed(2)}s`;
tls.events.on('rotated', ({ version, serialNumber }) =>
  console.log(`${t()} rotated: version ${version}, serial ${serialNumber}`),
);
files.events.on('rejected', ({ error }) =>
  console.log(`${t()} refused: ${error.message.split('\n')[0]}`),
);

const server = createServer(tls.serverOptions(), (_req, res) => res.end('ok'));
tls.attach(server);
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address() as { port: number };
console.log(`${t()} https://127.0.0.1:${port} serving serial ${leaves[0]!.serial}`);

/** One request on a fresh connection, so each one makes its own handshake. */
const get = () =>
  new Promise<string>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/', ca: ca.certPem, servername: 'localhost', agent: false },
      (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        res.resume();
        res.on('end', () => resolve(serial));
      },
    );
    req.on('error', reject);
    req.end();
  });

let failures = 0;
const seen = new Map<string, number>();
const deadline = performance.now() + 2_400;
const client = (async () => {
  for (let n = 1; performance.now() < deadline; n++) {
    try {
      const serial = await get();
      seen.set(serial, (seen.get(serial) ?? 0) + 1);
      if (n % 5 === 0) console.log(`${t()}   request ${n} saw serial ${serial}`);
    } catch (error) {
      failures++;
      console.log(`${t()}   request ${n} FAILED: ${(error as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 40));
  }
})();

for (let i = 1; i < leaves.length; i++) {
  await new Promise((r) => setTimeout(r, 600));
  install(i);
}
await client;
console.log(
  `${t()} done: ${[...seen.values()].reduce((a, b) => a + b, 0)} requests, ${failures} failed`,
);
for (const [serial, count] of seen) console.log(`  serial ${serial}: ${count} requests`);
server.close();
tls.close();
await files.close();
certs.cleanup();
