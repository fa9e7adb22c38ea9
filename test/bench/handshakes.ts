import { once } from 'node:events';
import { connect, createServer } from 'node:tls';
import { ConfigProvider } from '@towerline/config';
import { CertFactory } from '@towerline/testing';
import { loadTlsConfigSync, ServerTlsProvider, type TlsServerSettings } from '@towerline/tls';
import type { CaseResult } from './harness.js';

/**
 * Full TLS handshakes per second against a local server whose certificate comes from a
 * ServerTlsProvider, with no rotation and with a rotation every 100 ms, alternating in rounds so
 * both see the same machine. Three client loops keep the server busy.
 */
export async function measureHandshakes({
  rounds = 4,
  roundMs = 1_500,
} = {}): Promise<{ results: CaseResult[]; notes: Record<string, unknown> }> {
  const certs = new CertFactory();
  const ca = certs.createCA();
  const configs = Array.from({ length: 8 }, (_, i) => {
    const leaf = ca.issue({ commonName: `bench-${i}` });
    return loadTlsConfigSync({ cert: leaf.chainPem, key: leaf.keyPem });
  });
  const settings = new ConfigProvider<TlsServerSettings>({ initial: { default: configs[0]! } });
  const provider = new ServerTlsProvider(settings);
  const server = createServer(provider.serverOptions(), (s) => {
    s.on('error', () => {});
    s.end();
  });
  provider.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;

  const handshake = () =>
    new Promise<void>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost' });
      s.once('secureConnect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });

  async function run(rotate: boolean) {
    let count = 0;
    let failures = 0;
    let rotations = 0;
    const until = performance.now() + roundMs;
    const timer = rotate
      ? setInterval(() => {
          rotations++;
          void settings.reload({ default: configs[rotations % configs.length]! });
        }, 100)
      : undefined;
    const loop = async () => {
      while (performance.now() < until) {
        try {
          await handshake();
          count++;
        } catch {
          failures++;
        }
      }
    };
    const started = performance.now();
    await Promise.all([loop(), loop(), loop()]);
    const elapsed = performance.now() - started;
    clearInterval(timer);
    return { perSecond: (count * 1000) / elapsed, failures, rotations, count };
  }

  const steady: number[] = [];
  const rotating: number[] = [];
  let failures = 0;
  let rotations = 0;
  let handshakes = 0;
  await run(false); // warm-up
  for (let i = 0; i < rounds; i++) {
    const a = await run(false);
    const b = await run(true);
    steady.push(a.perSecond);
    rotating.push(b.perSecond);
    failures += a.failures + b.failures;
    rotations += b.rotations;
    handshakes += a.count + b.count;
  }
  server.close();
  certs.cleanup();
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
  const ratios = rotating.map((r, i) => r / steady[i]!);
  return {
    results: [
      { case: 'handshake, no rotation', nsPerOp: 1e9 / median(steady), perSecond: median(steady) },
      {
        case: 'handshake, rotation every 100 ms',
        nsPerOp: 1e9 / median(rotating),
        perSecond: median(rotating),
      },
    ],
    notes: {
      'handshakes/s rotating / steady (target >= 0.95)': +median(ratios).toFixed(3),
      'handshakes in all': handshakes,
      'rotations in all': rotations,
      'failed handshakes (target 0)': failures,
    },
  };
}
