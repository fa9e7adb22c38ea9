import { FaultProxy, freePort, LineClient, LineServer } from '@towerline/testing';
import { afterEach, describe, expect, it } from 'vitest';

const handles = () =>
  process
    .getActiveResourcesInfo()
    .filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'Timeout').length;

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c.close();
});

async function setup() {
  const server = await LineServer.start();
  const proxy = await FaultProxy.start({ target: { port: server.port } });
  cleanup.push(server, proxy);
  return { server, proxy };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('LineServer and LineClient', () => {
  it('answers every command, pipelined, in order', async () => {
    const { server } = await setup();
    const client = await LineClient.connect({ port: server.port });
    cleanup.push(client);
    const replies = await Promise.all([
      client.send('PING'),
      client.send('SLEEP 30'),
      client.send('SET k hello world'),
      client.send('GET k'),
      client.send('INCR n'),
      client.send('INCR n'),
      client.send('DEL k'),
      client.send('GET k'),
      client.send('ECHO hi there'),
    ]);
    expect(replies).toEqual([
      'PONG',
      'OK',
      'OK',
      'hello world',
      '1',
      '2',
      '1',
      '(nil)',
      'hi there',
    ]);
    await expect(client.send('NOPE')).rejects.toMatchObject({ code: 'ERR_REPLY' });
  });

  it('keeps its data across stop() and start() on the same port', async () => {
    const { server } = await setup();
    const port = server.port;
    const a = await LineClient.connect({ port });
    await a.send('SET k v');
    const pending = a.send('SLEEP 1000');
    await server.stop();
    await expect(pending).rejects.toMatchObject({ code: 'ECONNRESET' });
    await expect(LineClient.connect({ port })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await server.start();
    expect(server.port).toBe(port);
    const b = await LineClient.connect({ port });
    cleanup.push(b);
    expect(await b.send('GET k')).toBe('v');
  });

  it('aborts a connect with its signal', async () => {
    const port = await freePort();
    const ac = new AbortController();
    const server = await LineServer.start({ port, greeting: false });
    cleanup.push(server);
    const connecting = LineClient.connect({ port, signal: ac.signal }); // waits for a greeting
    ac.abort(new Error('enough'));
    await expect(connecting).rejects.toThrow('enough');
  });
});

describe('FaultProxy', () => {
  it('forwards traffic and counts it', async () => {
    const { proxy } = await setup();
    const client = await LineClient.connect({ port: proxy.port });
    cleanup.push(client);
    expect(await client.send('PING')).toBe('PONG');
    expect(proxy.stats).toMatchObject({ accepted: 1, active: 1 });
    expect(proxy.stats.bytesUp).toBe('PING\n'.length);
    expect(proxy.stats.bytesDown).toBeGreaterThan(0);
  });

  it('reset(): the client sees ECONNRESET; new connections still work', async () => {
    const { proxy } = await setup();
    const client = await LineClient.connect({ port: proxy.port });
    const pending = client.send('SLEEP 1000');
    await sleep(20);
    proxy.reset();
    await expect(pending).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(proxy.stats.resets).toBe(1);
    const again = await LineClient.connect({ port: proxy.port });
    cleanup.push(again);
    expect(await again.send('PING')).toBe('PONG');
  });

  it('blackhole(): no reply, the connection stays open; restore() lets new requests through', async () => {
    const { proxy } = await setup();
    const client = await LineClient.connect({ port: proxy.port });
    cleanup.push(client);
    proxy.blackhole();
    let answered = false;
    client.send('PING').then(
      () => {
        answered = true;
      },
      () => {},
    );
    await sleep(100);
    expect(answered).toBe(false);
    expect(client.closed).toBe(false);
    await proxy.restore();
    const fresh = await LineClient.connect({ port: proxy.port });
    cleanup.push(fresh);
    expect(await fresh.send('PING')).toBe('PONG');
  });

  it('stallGreeting(): TCP is accepted but the greeting never comes', async () => {
    const { proxy } = await setup();
    proxy.stallGreeting();
    const ac = new AbortController();
    const connecting = LineClient.connect({ port: proxy.port, signal: ac.signal });
    await proxy.waitForConnections(1);
    await sleep(50);
    ac.abort(new Error('greeting timeout'));
    await expect(connecting).rejects.toThrow('greeting timeout');
    await proxy.restore();
    const ok = await LineClient.connect({ port: proxy.port });
    cleanup.push(ok);
    expect(await ok.send('PING')).toBe('PONG');
  });

  it('latency(ms) delays replies', async () => {
    const { proxy } = await setup();
    const client = await LineClient.connect({ port: proxy.port });
    cleanup.push(client);
    proxy.latency(60);
    const started = performance.now();
    expect(await client.send('PING')).toBe('PONG');
    // One hop up and one down, each delayed: comfortably above one delay.
    expect(performance.now() - started).toBeGreaterThanOrEqual(0.8 * 60);
  });

  it('refuse(): ECONNREFUSED, then restore() on the same port', async () => {
    const { proxy } = await setup();
    const port = proxy.port;
    const client = await LineClient.connect({ port });
    await proxy.refuse();
    await expect(client.send('PING')).rejects.toBeDefined();
    await expect(LineClient.connect({ port })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await proxy.restore();
    expect(proxy.port).toBe(port);
    const again = await LineClient.connect({ port });
    cleanup.push(again);
    expect(await again.send('PING')).toBe('PONG');
  });

  it('leaves no socket, server or timer behind after close()', async () => {
    await sleep(50); // let the previous tests' sockets finish closing
    const before = handles();
    const server = await LineServer.start();
    const proxy = await FaultProxy.start({ target: { port: server.port } });
    const client = await LineClient.connect({ port: proxy.port });
    proxy.latency(5);
    await client.send('PING');
    client.close();
    await proxy.close();
    await server.close();
    await sleep(20);
    expect(handles()).toBeLessThanOrEqual(before);
  });
});
