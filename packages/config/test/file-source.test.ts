import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigProvider, fileSource } from '@towerline/config';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

interface Pair {
  cert: string;
  key: string;
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'towerline-files-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const waitFor = (fn: () => void) => vi.waitFor(fn, { timeout: 5_000, interval: 10 });

/** Both halves carry the same serial, as a matching cert/key pair would. */
const pairValidate = ({ cert, key }: Pair) =>
  cert.split(':')[1] === key.split(':')[1] && cert.endsWith('\n') && key.endsWith('\n')
    ? []
    : ['cert and key do not match'];

describe('fileSource', () => {
  it('follows in-place writes of one file', async () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ n: 1 }));
    const config = new ConfigProvider<{ n: number }, string>({
      source: fileSource(file, { debounceMs: 10 }),
      parse: (text) => JSON.parse(text),
    });
    expect((await config.start({ timeout: 5_000 })).n).toBe(1);
    writeFileSync(file, JSON.stringify({ n: 2 }));
    await waitFor(() => expect(config.get().n).toBe(2));
    await config.close();
  });

  it('rejects a half-written file, keeps the old value, and picks up the complete one', async () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ n: 1 }));
    const config = new ConfigProvider<{ n: number }, string>({
      source: fileSource(file, { debounceMs: 10 }),
      parse: (text) => JSON.parse(text),
    });
    const rejected = vi.fn();
    config.events.on('rejected', rejected);
    await config.start({ timeout: 5_000 });
    writeFileSync(file, '{"n": 2'); // the writer has not finished
    await waitFor(() => expect(rejected).toHaveBeenCalled());
    expect(config.get().n).toBe(1);
    writeFileSync(file, JSON.stringify({ n: 2 }));
    await waitFor(() => expect(config.get().n).toBe(2));
    await config.close();
  });

  it('follows write-to-temp-then-rename, three rotations in a row', async () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ n: 0 }));
    const config = new ConfigProvider<{ n: number }, string>({
      source: fileSource(file, { debounceMs: 10 }),
      parse: (text) => JSON.parse(text),
    });
    await config.start({ timeout: 5_000 });
    for (let n = 1; n <= 3; n++) {
      const tmp = join(dir, `.config.json.${n}.tmp`);
      writeFileSync(tmp, JSON.stringify({ n }));
      renameSync(tmp, file);
      await waitFor(() => expect(config.get().n).toBe(n));
    }
    await config.close();
  });

  it('follows the Kubernetes ..data symlink swap, reading cert and key as one snapshot', async () => {
    // The layout a projected Secret volume has: files link through ..data to a timestamped dir.
    const version = (n: number) => {
      const v = join(dir, `..2026_${n}`);
      mkdirSync(v);
      writeFileSync(join(v, 'tls.crt'), `cert:${n}\n`);
      writeFileSync(join(v, 'tls.key'), `key:${n}\n`);
      return `..2026_${n}`;
    };
    symlinkSync(version(1), join(dir, '..data'));
    symlinkSync('..data/tls.crt', join(dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(dir, 'tls.key'));
    const config = new ConfigProvider<Pair, Pair>({
      source: fileSource(
        { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') },
        { debounceMs: 10 },
      ),
      validate: pairValidate,
    });
    const rejected = vi.fn();
    config.events.on('rejected', rejected);
    expect(await config.start({ timeout: 5_000 })).toEqual({ cert: 'cert:1\n', key: 'key:1\n' });
    for (let n = 2; n <= 4; n++) {
      const target = version(n);
      symlinkSync(target, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data')); // the atomic swap kubelet does
      await waitFor(() => expect(config.get()).toEqual({ cert: `cert:${n}\n`, key: `key:${n}\n` }));
    }
    expect(rejected).not.toHaveBeenCalled();
    await config.close();
  });

  it('pairs files written one after the other only once both are complete', async () => {
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    writeFileSync(cert, 'cert:1\n');
    writeFileSync(key, 'key:1\n');
    const config = new ConfigProvider<Pair, Pair>({
      source: fileSource({ cert, key }, { debounceMs: 5 }),
      validate: pairValidate,
    });
    await config.start({ timeout: 5_000 });
    writeFileSync(cert, 'cert:2\n');
    await new Promise((r) => setTimeout(r, 50)); // the new cert alone is seen and refused
    expect(config.get()).toEqual({ cert: 'cert:1\n', key: 'key:1\n' });
    writeFileSync(key, 'key:2\n');
    await waitFor(() => expect(config.get()).toEqual({ cert: 'cert:2\n', key: 'key:2\n' }));
    await config.close();
  });

  it('load() reads the files on demand, for reload()', async () => {
    const file = join(dir, 'n.txt');
    writeFileSync(file, '1');
    const source = fileSource(file);
    const config = new ConfigProvider<number, string>({
      source: { load: source.load },
      parse: Number,
    });
    expect(await config.start()).toBe(1);
    writeFileSync(file, '2');
    expect(await config.reload()).toBe(2);
  });

  it('names a missing file and a directory in its errors', async () => {
    const missing = fileSource(join(dir, 'nope.json'));
    await expect(missing.load()).rejects.toThrow(/nope\.json does not exist/);
    const isDir = fileSource(dir);
    await expect(isDir.load()).rejects.toThrow(/is a directory/);
  });

  it('rebuilds with backoff when the file disappears and comes back', async () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ n: 1 }));
    const config = new ConfigProvider<{ n: number }, string>({
      source: fileSource(file, { debounceMs: 5 }),
      parse: (text) => JSON.parse(text),
    });
    const unhealthy = vi.fn();
    config.events.on('unhealthy', unhealthy);
    await config.start({ timeout: 5_000 });
    rmSync(file);
    await waitFor(() => expect(unhealthy).toHaveBeenCalled());
    expect(config.get().n).toBe(1);
    writeFileSync(file, JSON.stringify({ n: 5 }));
    await waitFor(() => expect(config.get().n).toBe(5));
    expect(config.healthy).toBe(true);
    await config.close();
  });
});
