/**
 * A stream's end is part of the log too: after a DELETE, or a TTL that ran out (while the
 * server ran or while it was down), the server must start again on the same directory, with
 * every other stream intact and the deleted name free for a new stream. Killed gracefully
 * (SIGTERM) and with kill -9. (Replaying a delete used to stop the start as "corrupt".)
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@towerline/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer } from './support/server-process.js';

const root = mkdtempSync(join(tmpdir(), 'towerline-ds-restart-delete-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const running: ServerProcess[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.kill9();
});

async function stop(s: ServerProcess, how: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  if (how === 'SIGKILL') return s.kill9();
  const exited = once(s.child, 'exit');
  s.child.kill('SIGTERM');
  await exited;
}

async function setup(mode: string, name: string) {
  const port = await freePort();
  const env = {
    DS_STORAGE__MODE: mode,
    DS_STORAGE__DATA_DIR: join(root, `${mode}-${name}`),
    DS_SERVER__BIND_ADDRESS: `127.0.0.1:${port}`,
  };
  const base = `http://127.0.0.1:${port}/v1/stream`;
  const start = async () => {
    const s = await spawnServer(env);
    running.push(s);
    return s;
  };
  const put = async (stream: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}/${stream}`, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain', ...headers },
    });
    expect(res.status).toBe(201);
  };
  const append = async (stream: string, body: string) => {
    const res = await fetch(`${base}/${stream}`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body,
    });
    expect(res.status).toBe(204);
  };
  const read = async (stream: string) => {
    const res = await fetch(`${base}/${stream}?offset=-1`);
    return { status: res.status, text: await res.text() };
  };
  const del = async (stream: string) => {
    const res = await fetch(`${base}/${stream}`, { method: 'DELETE' });
    expect(res.status).toBe(204);
  };
  return { start, put, append, read, del };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(['file-fast', 'file-durable', 'acid'] as const)('%s', (mode) => {
  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'restarts after a DELETE and a TTL expiry (stopped with %s); other streams intact',
    { timeout: 90_000 },
    async (how) => {
      const t = await setup(mode, `delete-${how}`);
      let server = await t.start();
      await t.put('kept');
      await t.append('kept', 'a;b;');
      await t.put('gone');
      await t.append('gone', 'x;');
      await t.del('gone');
      // Expires while the server runs (read after expiry) …
      await t.put('ran-out', { 'stream-ttl': '1' });
      await t.append('ran-out', 'y;');
      // … and one that expires while the server is down.
      await t.put('ran-out-down', { 'stream-ttl': '2' });
      await sleep(1_200);
      expect((await t.read('ran-out')).status).toBe(404);
      await stop(server, how);
      await sleep(1_000);

      server = await t.start();
      expect(await t.read('kept')).toEqual({ status: 200, text: 'a;b;' });
      expect((await t.read('gone')).status).toBe(404);
      // The last access of a TTL stream is not on disk in these modes: a restart counts as one
      // (README), so the TTL streams are gone at the latest one TTL after the start.
      await sleep(2_300);
      for (const name of ['ran-out', 'ran-out-down'])
        expect((await t.read(name)).status, name).toBe(404);
      // The names are free again, and the new streams survive one more restart.
      await t.put('gone');
      await t.append('gone', 'new;');
      await t.append('kept', 'c;');
      await stop(server, how);

      server = await t.start();
      expect(await t.read('kept')).toEqual({ status: 200, text: 'a;b;c;' });
      expect(await t.read('gone')).toEqual({ status: 200, text: 'new;' });
      expect((await t.read('ran-out-down')).status).toBe(404);
      await stop(server, 'SIGTERM');
    },
  );
});
