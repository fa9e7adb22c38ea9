import { fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { drive } from './ds-process.js';

const here = new URL('.', import.meta.url).pathname;
const n = Number(process.argv[2] ?? 100);
const child = fork(join(here, 'ds-server.ts'), ['towerline'], {
  execArgv: ['--import', 'tsx', '--expose-gc', '--cpu-prof', '--cpu-prof-dir=/work/scratch/prof'],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const [m] = (await once(child, 'message')) as [{ url: string }];
const server = {
  child,
  url: m.url,
  cpu: async () => {
    child.send('cpu');
    const [r] = (await once(child, 'message')) as any;
    return r.cpu.user + r.cpu.system;
  },
} as any;
const readers = fork(join(here, 'ds-readers.mjs'), [], {
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
await once(readers, 'message');
const ask = async (x: unknown) => {
  readers.send(x as never);
  return (await once(readers, 'message'))[0];
};
const url = `${m.url}/v1/stream/prof`;
await fetch(url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
const u = new URL(url);
if (n)
  console.log(
    await ask({
      open: {
        host: u.hostname,
        port: Number(u.port),
        path: `${u.pathname}?offset=now&live=sse`,
        n,
      },
    }),
  );
await ask({ mode: 'count' });
const d = await drive(server, url, 'POST', 5000);
console.log(d);
await ask('close');
readers.kill();
child.send('stop');
await once(child, 'exit');
