/**
 * `/healthz` and `/readyz` answer whatever `http.stream_base_path` is: a base path that covers
 * them (`/`, `/healthz`) leaves them working, and the streams under it too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type RunningApp, startApp } from '@towerline/durable-streams';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'towerline-ds-health-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const apps: RunningApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

async function start(basePath: string): Promise<string> {
  const config = loadConfig({
    configDir: dir,
    env: { DS_SERVER__BIND_ADDRESS: '127.0.0.1:0', DS_HTTP__STREAM_BASE_PATH: basePath },
  });
  const app = await startApp(config, () => {});
  apps.push(app);
  return app.url;
}

async function expectHealthy(url: string): Promise<void> {
  for (const path of ['/healthz', '/readyz']) {
    const res = await fetch(`${url}${path}`);
    expect(res.status, path).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${url}${path}`, { method: 'HEAD' })).status).toBe(200);
  }
}

describe('health endpoints under any http.stream_base_path', () => {
  it.each(['/', '/healthz', '/readyz'])(
    'base path %s: health answers, streams work',
    async (base) => {
      const url = await start(base);
      await expectHealthy(url);
      const stream = `${url}${base === '/' ? '' : base}/orders`;
      const put = await fetch(stream, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
      expect(put.status).toBe(201);
      const post = await fetch(stream, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'a',
      });
      expect(post.status).toBe(204);
      expect(await (await fetch(`${stream}?offset=-1`)).text()).toBe('a');
    },
  );

  it('base path /: a write to /healthz is refused (405), not taken for a stream or health', async () => {
    const url = await start('/');
    for (const method of ['PUT', 'POST', 'DELETE']) {
      const res = await fetch(`${url}/healthz`, {
        method,
        headers: { 'content-type': 'text/plain' },
      });
      expect(res.status, method).toBe(405);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.headers.get('allow')).toBe('GET, HEAD');
      await res.arrayBuffer();
    }
    await expectHealthy(url);
  });

  it('the default base path: health answers every method as before', async () => {
    const url = await start('/v1/stream');
    await expectHealthy(url);
    expect((await fetch(`${url}/healthz`, { method: 'POST' })).status).toBe(200);
    expect((await fetch(`${url}/v1/stream/healthz`, { method: 'PUT' })).status).toBe(201);
  });
});
