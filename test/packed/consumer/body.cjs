// The smoke program every JavaScript consumer runs, handed the packages as its module system
// loaded them (`m`) and @towerline/core and @towerline/config as the *other* system loaded
// them (`other`): an error made by one copy must be recognised by the other. No imports of its
// own, so that the ESM and the CJS consumer exercise their own copies.
'use strict';
const net = require('node:net');
const assert = require('node:assert/strict');

const within = (ms, what, promise) => {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
};

async function failedRetry({ core, retry }, other) {
  let calls = 0;
  const layer = new retry.RetryLayer({
    maxAttempts: 3,
    idempotent: true,
    backoff: core.backoff.fixed(5),
  });
  const retries = [];
  layer.events.on('retry', ({ attempt }) => retries.push(attempt));
  const service = layer.wrap({
    call: async () => {
      calls++;
      throw Object.assign(new Error('boom'), { code: 'EBOOM' });
    },
  });
  const error = await service.call('x').then(
    () => assert.fail('a failing service succeeded'),
    (e) => e,
  );
  assert.equal(error.code, 'ERR_RETRY_EXHAUSTED');
  assert.equal(error.cause.code, 'EBOOM');
  assert.equal(calls, 3);
  assert.deepEqual(retries, [1, 2]);
  assert.ok(error instanceof core.TowerlineError);
  assert.ok(core.isTowerlineError(error, 'ERR_RETRY_EXHAUSTED'));
  // The error-identity check across module systems.
  assert.ok(error instanceof other.core.TowerlineError, 'instanceof across CJS/ESM');
  assert.ok(other.core.isTowerlineError(error, 'ERR_RETRY_EXHAUSTED'), 'brand across CJS/ESM');
  return `failed retry: ${calls} calls, then ERR_RETRY_EXHAUSTED (recognised by both copies)`;
}

async function reconnectOverTcp({ core, reconnect }) {
  const sockets = new Set();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const listen = (port) =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve(server.address().port);
      });
    });
  const port = await listen(0);
  const r = new reconnect.Reconnector({
    connect: () =>
      new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
    watch: (s, lost) => {
      s.on('close', () => lost(new Error('closed')));
      s.on('error', () => {});
    },
    dispose: (s) => s.destroy(),
    policy: core.backoff.fixed(25),
    minUptime: 10,
    name: 'smoke',
  });
  try {
    r.start();
    await within(5_000, 'first connect', r.whenReady());
    const scheduled = r.events.next('reconnectScheduled');
    // The server goes away: its sockets die and new connections are refused.
    await new Promise((resolve) => {
      server.close(resolve);
      for (const s of sockets) s.destroy();
    });
    await within(5_000, 'reconnect scheduled', scheduled);
    const back = r.events.next('connected');
    await listen(port);
    const connected = await within(5_000, 'reconnect', back);
    assert.ok(connected.generation >= 2, 'a new generation');
    assert.equal(r.state, 'connected');
    return `reconnect: generation ${connected.generation} after the server came back`;
  } finally {
    await r.close();
    for (const s of sockets) s.destroy();
    if (server.listening) await new Promise((resolve) => server.close(resolve));
  }
}

async function configReload({ config }, other) {
  const provider = new config.ConfigProvider({
    name: 'smoke',
    validate: (v) => (v.port > 0 ? [] : ['port must be > 0']),
    initial: { port: 1 },
  });
  try {
    assert.equal(provider.get().port, 1);
    assert.equal((await provider.reload({ port: 2 })).port, 2);
    assert.equal(provider.get().port, 2);
    const error = await provider.reload({ port: -1 }).then(
      () => assert.fail('an invalid value was accepted'),
      (e) => e,
    );
    assert.ok(config.isConfigInvalid(error));
    assert.ok(other.config.isConfigInvalid(error), 'isConfigInvalid across CJS/ESM');
    assert.equal(provider.get().port, 2, 'the old value is kept');
    return 'config reload: 1 -> 2, the invalid value refused (recognised by both copies)';
  } finally {
    await provider.close();
  }
}

async function ioredisSix({ ioredis }) {
  // @ioredis/commands 2.x (ioredis 6's) knows HTTL; the 1.5.0 copy pinned for ioredis 5 does not.
  assert.equal(ioredis.isReadOnlyCommand('HTTL'), true, 'flags from the installed ioredis 6');
  const redis = ioredis.resilientRedis({
    host: '127.0.0.1',
    port: Number(process.env.REDIS_PORT ?? 6379),
  });
  const key = `towerline:packed:${process.pid}:${Date.now()}`;
  try {
    assert.equal(await within(5_000, 'redis SET', redis.set(key, 'v')), 'OK');
    assert.equal(await redis.get(key), 'v');
    await redis.del(key);
    return 'ioredis 6: HTTL read-only, SET/GET over the resilient client';
  } finally {
    await redis.close();
  }
}

module.exports = async function smoke(m, other, label) {
  for (const [name, mod] of Object.entries(m)) {
    assert.ok(mod && Object.keys(mod).length > 0, `@towerline/${name} loaded`);
  }
  const lines = [];
  for (const step of [failedRetry, reconnectOverTcp, configReload, ioredisSix]) {
    lines.push(await step(m, other));
  }
  for (const line of lines) console.log(`${label}: ok  ${line}`);
  console.log(`${label}: ok  ${Object.keys(m).length} packages loaded`);
};
