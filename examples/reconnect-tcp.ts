/**
 * A socket client that survives a server restart, printing every state change.
 *
 *   pnpm example examples/reconnect-tcp.ts
 *
 * A line-protocol server is started, stopped for ~1.5 s and started again on the same port,
 * while the client keeps incrementing a counter through a ReconnectService.
 */
import { backoff, isTowerlineError } from '@towerline/core';
import { ReconnectLayer, Reconnector } from '@towerline/reconnect';
import { type LineClient, LineServer, lineConnection } from '@towerline/testing';

const server = await LineServer.start();
const started = performance.now();
const t = () => `${((performance.now() - started) / 1000).toFixed(2).padStart(5)}s`;

const reconnector = new Reconnector<LineClient>({
  ...lineConnection({ port: server.port }),
  name: 'line-kv',
  minUptime: 300,
  policy: backoff.exponentialRandom({ initial: 100, max: 1_000, jitter: 'decorrelated' }),
});
reconnector.events.on('stateChange', ({ from, to }) =>
  console.log(`${t()} state ${from} -> ${to}`),
);
reconnector.events.on('reconnectScheduled', ({ attempt, delayMs, error }) =>
  console.log(
    `${t()}   attempt ${attempt} in ${delayMs.toFixed(0)} ms (${(error as { code?: string }).code})`,
  ),
);
reconnector.events.on('connected', ({ downtimeMs }) =>
  console.log(`${t()}   connected${downtimeMs ? ` after ${downtimeMs.toFixed(0)} ms down` : ''}`),
);

// INCR is not idempotent: a request cut off by the restart is reported, never silently resent.
const kv = new ReconnectLayer<LineClient, string, string>({
  call: (client, line) => client.send(line),
  retryOnReconnect: (line) => line.startsWith('GET'),
}).wrap(reconnector);

let acknowledged = 0;
let ambiguous = 0;
const workload = (async () => {
  for (let i = 0; i < 40; i++) {
    try {
      await kv.call('INCR counter');
      acknowledged++;
    } catch (error) {
      if (isTowerlineError(error, 'ERR_CONNECTION_LOST')) ambiguous++;
      else throw error;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
})();

setTimeout(async () => {
  console.log(`${t()} -- server stops --`);
  await server.stop();
  setTimeout(async () => {
    console.log(`${t()} -- server starts again on port ${server.port} --`);
    await server.start();
  }, 1_500);
}, 600);

await workload;
const counter = Number(await kv.call('GET counter'));
console.log(
  `${t()} done: ${acknowledged} INCR acknowledged, ${ambiguous} may have executed, counter = ${counter}, ` +
    `${reconnector.stats.reconnects} reconnect(s)`,
);
await kv.close();
await server.close();
