import { once } from 'node:events';
import { renameSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request } from 'node:https';
import { join } from 'node:path';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { ConfigProvider } from '@towerline/config';
import { CertFactory, type IssuedCert } from '@towerline/testing';
import {
  ClientTlsProvider,
  loadTlsConfigSync,
  ServerTlsProvider,
  serverConfigFromFiles,
  type TlsClientSettings,
  type TlsServerSettings,
} from '@towerline/tls';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';

const certs = new CertFactory();
afterAll(() => certs.cleanup());
const ca = certs.createCA({ commonName: 'rotation CA' });
const clientCa = certs.createCA({ commonName: 'client CA' });
const waitFor = (fn: () => void) => vi.waitFor(fn, { timeout: 5_000, interval: 10 });

const config = (leaf: IssuedCert) => loadTlsConfigSync({ cert: leaf.chainPem, key: leaf.keyPem });
const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** An echo server whose TLS comes from `provider`. */
async function echoServer(provider: ServerTlsProvider): Promise<{ server: Server; port: number }> {
  const sockets = new Set<TLSSocket>();
  const server = createServer(provider.serverOptions(), (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  provider.attach(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    server.close();
    await once(server, 'close');
  });
  return { server, port: (server.address() as { port: number }).port };
}

function handshake(
  port: number,
  options: { servername?: string; identity?: IssuedCert } = {},
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: ca.certPem,
      ...(options.servername ? { servername: options.servername } : { servername: '' }),
      ...(options.identity
        ? { cert: options.identity.chainPem, key: options.identity.keyPem }
        : {}),
      checkServerIdentity: () => undefined,
    });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

const serialOf = (socket: TLSSocket) => socket.getPeerCertificate().serialNumber.toUpperCase();

async function echo(socket: TLSSocket, text: string): Promise<string> {
  socket.write(text);
  const [chunk] = await once(socket, 'data');
  return chunk.toString();
}

describe('ServerTlsProvider', () => {
  it('swaps A→B: the session opened under A keeps working, new handshakes see B (no SNI)', async () => {
    const a = ca.issue({ commonName: 'a' });
    const b = ca.issue({ commonName: 'b' });
    const settings = new ConfigProvider<TlsServerSettings>({ initial: { default: config(a) } });
    const provider = new ServerTlsProvider(settings);
    const { port } = await echoServer(provider);
    const old = await handshake(port);
    closers.push(() => old.destroy());
    expect(serialOf(old)).toBe(a.serial);
    await settings.reload({ default: config(b) });
    expect(provider.version).toBe(2);
    expect(await echo(old, 'still here')).toBe('still here');
    const fresh = await handshake(port);
    closers.push(() => fresh.destroy());
    expect(serialOf(fresh)).toBe(b.serial);
    expect(await echo(old, 'and still')).toBe('and still');
  });

  it('serves per-hostname certificates through SNI, with a default for the rest, across a rotation', async () => {
    const fallback = ca.issue({ commonName: 'default' });
    const api = ca.issue({ commonName: 'api.example.test', altNames: ['api.example.test'] });
    const wild = ca.issue({ commonName: '*.apps.example.test', altNames: ['*.apps.example.test'] });
    const api2 = ca.issue({ commonName: 'api.example.test', altNames: ['api.example.test'] });
    const settings = new ConfigProvider<TlsServerSettings>({
      initial: {
        default: config(fallback),
        sni: { 'api.example.test': config(api), '*.apps.example.test': config(wild) },
      },
    });
    const { port } = await echoServer(new ServerTlsProvider(settings));
    const check = async (servername: string | undefined, serial: string) => {
      const s = await handshake(port, { servername });
      expect(serialOf(s)).toBe(serial);
      s.destroy();
    };
    const apiSession = await handshake(port, { servername: 'api.example.test' });
    closers.push(() => apiSession.destroy());
    await check('api.example.test', api.serial);
    await check('x.apps.example.test', wild.serial);
    await check('unknown.test', fallback.serial);
    await check(undefined, fallback.serial);
    await settings.reload({
      default: config(fallback),
      sni: { 'api.example.test': config(api2), '*.apps.example.test': config(wild) },
    });
    await check('api.example.test', api2.serial);
    expect(await echo(apiSession, 'ping')).toBe('ping');
  });

  it('mTLS: client certificates are still required and verified after rotation', async () => {
    const a = ca.issue({ commonName: 'a' });
    const b = ca.issue({ commonName: 'b' });
    const client = clientCa.issue({ commonName: 'client' });
    const stranger = ca.issue({ commonName: 'not from the client CA' });
    const settings = new ConfigProvider<TlsServerSettings>({
      initial: { default: config(a), clientCa: clientCa.certPem },
    });
    const provider = new ServerTlsProvider(settings, {
      requestCert: true,
      rejectUnauthorized: true,
    });
    const { port } = await echoServer(provider);
    /** Connects and sends a byte; resolves with how the server answered: 'echo' or 'refused'. */
    const attempt = (identity?: IssuedCert) =>
      new Promise<'echo' | 'refused'>((resolve) => {
        const socket = connect({
          host: '127.0.0.1',
          port,
          ca: ca.certPem,
          servername: '',
          ...(identity ? { cert: identity.chainPem, key: identity.keyPem } : {}),
          checkServerIdentity: () => undefined,
        });
        const done = (how: 'echo' | 'refused') => {
          socket.destroy();
          resolve(how);
        };
        // TLS 1.3 reports the refusal after the client's side of the handshake: on first use.
        socket.once('secureConnect', () => socket.write('x'));
        socket.once('data', () => done('echo'));
        socket.once('error', () => done('refused'));
        socket.once('close', () => done('refused'));
      });
    for (const serverCert of [a, b]) {
      await settings.reload({ default: config(serverCert), clientCa: clientCa.certPem });
      const ok = await handshake(port, { identity: client });
      expect(serialOf(ok)).toBe(serverCert.serial);
      expect(await echo(ok, 'hello')).toBe('hello');
      ok.destroy();
      expect(await attempt(client)).toBe('echo');
      expect(await attempt()).toBe('refused');
      expect(await attempt(stranger)).toBe('refused');
    }
  });

  it('rotation under load: a handshake loop sees zero failures while the certificate rotates every 100 ms', async () => {
    const leaves = Array.from({ length: 12 }, (_, i) => ca.issue({ commonName: `r${i}` }));
    const configs = leaves.map(config);
    const settings = new ConfigProvider<TlsServerSettings>({ initial: { default: configs[0]! } });
    const provider = new ServerTlsProvider(settings);
    const { port } = await echoServer(provider);
    const seen = new Set<string>();
    let handshakes = 0;
    let failures = 0;
    let rotating = true;
    const loop = async () => {
      while (rotating) {
        try {
          const s = await handshake(port);
          seen.add(serialOf(s));
          handshakes++;
          s.destroy();
        } catch {
          failures++;
        }
      }
    };
    const clients = [loop(), loop(), loop()];
    for (let i = 1; i < configs.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await settings.reload({ default: configs[i]! });
    }
    await new Promise((r) => setTimeout(r, 100));
    rotating = false;
    await Promise.all(clients);
    expect(failures).toBe(0);
    expect(handshakes).toBeGreaterThan(50);
    expect(seen.size).toBeGreaterThanOrEqual(6); // most versions were actually served
  });

  it('keeps serving the old certificate when a new one is unusable', async () => {
    const a = ca.issue({ commonName: 'a' });
    const b = ca.issue({ commonName: 'b' });
    const settings = new ConfigProvider<TlsServerSettings>({ initial: { default: config(a) } });
    const provider = new ServerTlsProvider(settings);
    const rejected = vi.fn();
    provider.events.on('rejected', rejected);
    const { port } = await echoServer(provider);
    // A pair that loads but does not match cannot be produced by loadTlsConfig; forge one.
    const mismatched = { ...config(a), cert: b.chainPem };
    Object.defineProperty(mismatched, 'key', { value: a.keyPem });
    await settings.reload({ default: mismatched as never });
    expect(rejected).toHaveBeenCalledTimes(1);
    expect(provider.version).toBe(1);
    const s = await handshake(port);
    expect(serialOf(s)).toBe(a.serial);
    s.destroy();
  });

  it('rotates from watched files; a half-written pair is refused and the old one served', async () => {
    const a = ca.issue({ commonName: 'file-a' });
    const b = ca.issue({ commonName: 'file-b' });
    const c = ca.issue({ commonName: 'file-c' });
    const dir = certs.dir;
    const certPath = join(dir, 'live.crt');
    const keyPath = join(dir, 'live.key');
    writeFileSync(certPath, a.chainPem);
    writeFileSync(keyPath, a.keyPem);
    const files = serverConfigFromFiles({ cert: certPath, key: keyPath }, { debounceMs: 10 });
    closers.push(() => files.close());
    const rejected = vi.fn();
    files.events.on('rejected', rejected);
    await files.start({ timeout: 5_000 });
    const provider = new ServerTlsProvider(files);
    const { port } = await echoServer(provider);
    // In place: the cert first (mismatch, refused), then the key.
    writeFileSync(certPath, b.chainPem);
    await waitFor(() => expect(rejected).toHaveBeenCalled());
    let s = await handshake(port);
    expect(serialOf(s)).toBe(a.serial);
    s.destroy();
    writeFileSync(keyPath, b.keyPem);
    await waitFor(() => expect(provider.current.default.leaf.serialNumber).toBe(b.serial));
    // Rename-over, key first then cert.
    writeFileSync(join(dir, 'tmp.key'), c.keyPem);
    writeFileSync(join(dir, 'tmp.crt'), c.chainPem);
    renameSync(join(dir, 'tmp.key'), keyPath);
    renameSync(join(dir, 'tmp.crt'), certPath);
    await waitFor(() => expect(provider.current.default.leaf.serialNumber).toBe(c.serial));
    s = await handshake(port);
    expect(serialOf(s)).toBe(c.serial);
    s.destroy();
    expect(files.streamHealthy).toBe(true);
    expect(files.getConfig().default.leaf.serialNumber).toBe(c.serial);
  });
});

describe('ClientTlsProvider', () => {
  it('presents the new client certificate after rotation, over pooled keep-alive sockets, with no failed request', async () => {
    const serverCert = ca.issue({ commonName: 'server' });
    const id1 = clientCa.issue({ commonName: 'client-1' });
    const id2 = clientCa.issue({ commonName: 'client-2' });
    const server = createHttpsServer(
      {
        cert: serverCert.chainPem,
        key: serverCert.keyPem,
        ca: clientCa.certPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        res.end(peer.subject.CN);
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const settings = new ConfigProvider<TlsClientSettings>({
      initial: { identity: config(id1), ca: ca.certPem },
    });
    const client = new ClientTlsProvider(settings);
    closers.push(async () => {
      client.close();
      server.closeAllConnections();
      server.close();
    });
    const get = () =>
      new Promise<string>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/',
            agent: client.agent(),
            checkServerIdentity: () => undefined,
          },
          (res) => {
            let body = '';
            res.on('data', (d) => {
              body += d;
            });
            res.on('end', () => resolve(body));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const before = await Promise.all(Array.from({ length: 5 }, get));
    expect(new Set(before)).toEqual(new Set(['client-1']));
    const oldAgent = client.agent();
    const inFlight = Array.from({ length: 5 }, get);
    await settings.reload({ identity: config(id2), ca: ca.certPem });
    const after = await Promise.all(Array.from({ length: 5 }, get));
    expect(new Set(after)).toEqual(new Set(['client-2']));
    expect(await Promise.all(inFlight)).toEqual(Array(5).fill('client-1'));
    expect(client.agent()).not.toBe(oldAgent);
    await waitFor(() => expect(Object.keys(oldAgent.freeSockets)).toHaveLength(0));
  });

  it('connectOptions() carries the current identity for raw tls.connect', async () => {
    const id = clientCa.issue({ commonName: 'raw' });
    const client = new ClientTlsProvider({
      identity: config(id),
      ca: ca.certPem,
      servername: 'localhost',
    });
    const options = client.connectOptions({ port: 1 });
    expect(options).toMatchObject({
      port: 1,
      cert: id.chainPem,
      ca: ca.certPem,
      servername: 'localhost',
    });
    expect(options.key).toBe(id.keyPem);
  });
});
