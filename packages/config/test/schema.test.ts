import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  ConfigProvider,
  describeParseError,
  fileSource,
  isConfigInvalid,
  type StandardSchemaV1,
} from '@towerline/config';
import * as v from 'valibot';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'towerline-schema-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const App = v.strictObject({
  listen: v.optional(v.string(), ':8080'),
  password: v.pipe(v.string(), v.minLength(12)),
  rateLimit: v.optional(
    v.strictObject({ burst: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 5) }),
    {},
  ),
});

type AppConfig = v.InferOutput<typeof App>;

async function refusal(run: () => Promise<unknown>): Promise<Error & { problems?: string[] }> {
  try {
    await run();
  } catch (error) {
    return error as Error & { problems?: string[] };
  }
  throw new Error('expected a refusal');
}

describe('ConfigProvider schema (Standard Schema)', () => {
  it('valibot: defaults fill in, the output is the value, the type is inferred', async () => {
    const config = new ConfigProvider<AppConfig, unknown>({ schema: App });
    const value = await config.reload({ password: 'correct horse battery' });
    expect(value).toEqual({
      listen: ':8080',
      password: 'correct horse battery',
      rateLimit: { burst: 5 },
    });
    const burst: number = config.get().rateLimit.burst;
    expect(burst).toBe(5);
    expect(Object.isFrozen(config.get().rateLimit)).toBe(true);
  });

  it('a refused value lists every issue by path, masks the string that failed, keeps the old value', async () => {
    const config = new ConfigProvider<AppConfig, unknown>({ schema: App });
    await config.reload({ password: 'correct horse battery' });
    const rejected: string[] = [];
    config.events.on('rejected', ({ error }) => rejected.push(error.message));
    const error = await refusal(() =>
      config.reload({ password: 'hunter2', rateLimit: { burst: 0, brust: 1 } } as never),
    );
    expect(isConfigInvalid(error)).toBe(true);
    expect(error.problems).toHaveLength(3);
    expect(error.message).toMatch(/password: /);
    expect(error.message).toMatch(/rateLimit\.burst: /);
    // An unknown key may be a secret pasted in the wrong place: named by its length only.
    expect(error.message).toMatch(/rateLimit\.\(a key of 5 characters\): /);
    expect(error.message).not.toContain('brust');
    for (const text of [error.message, inspect(error, { depth: 10 }), ...rejected])
      expect(text).not.toContain('hunter2');
    expect(config.get().password).toBe('correct horse battery');
  });

  it('runs after parse and before validate', async () => {
    const calls: string[] = [];
    const config = new ConfigProvider({
      parse: (text: string) => {
        calls.push('parse');
        return JSON.parse(text);
      },
      schema: App,
      validate: (c) => {
        calls.push(`validate ${c.listen}`);
      },
    });
    await config.reload('{"password":"correct horse battery"}');
    expect(calls).toEqual(['parse', 'validate :8080']);
  });

  it('any Standard Schema implementer works; an asynchronous one is refused', async () => {
    const even: StandardSchemaV1<unknown, number> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: (x) =>
          typeof x === 'number' && x % 2 === 0
            ? { value: x }
            : { issues: [{ message: 'expected an even number', path: [{ key: 'n' }] }] },
      },
    };
    const config = new ConfigProvider({ schema: even });
    expect(await config.reload(4)).toBe(4);
    expect((await refusal(() => config.reload(3))).message).toMatch(/n: expected an even number/);
    const later: StandardSchemaV1<unknown, number> = {
      '~standard': { version: 1, vendor: 'test', validate: async (x) => ({ value: x as number }) },
    };
    expect((await refusal(() => new ConfigProvider({ schema: later }).reload(1))).message).toMatch(
      /asynchronous/,
    );
    expect(() => new ConfigProvider({ schema: {} as never })).toThrow(/Standard Schema/);
  });
});

describe('parse errors quote structure, never the source line', () => {
  it('a TOML-style error: first line and line/column, not the code frame', () => {
    const error = Object.assign(
      new Error(
        'Invalid TOML document: each key-value declaration must be followed by an end-of-line\n\n1:  a = 1\n2:  db_password = "hunter2" x\n                            ^\n',
      ),
      { line: 2, column: 25 },
    );
    expect(describeParseError(error)).toBe(
      'each key-value declaration must be followed by an end-of-line (line 2, column 25)',
    );
  });

  it.each([
    ['{"db_password": hunter2}'],
    ['{"db_password": "hunter2" x}'],
    ['{\n  "a": 1,\n  "db_password": "hunter2"\n  "b": 2\n}'],
  ])('JSON.parse of %j', async (text) => {
    const config = new ConfigProvider({ parse: (t: string) => JSON.parse(t) as object });
    const error = await refusal(() => config.reload(text));
    expect(isConfigInvalid(error)).toBe(true);
    for (const t of [error.message, inspect(error, { depth: 10 }), JSON.stringify(error)])
      expect(t).not.toContain('hunter2');
    if (text.includes('\n')) expect(error.message).toMatch(/line 4, column 3/);
  });

  it('a watched file with a secret on the bad line: ERR_CONFIG_INVALID without the line', async () => {
    const path = join(dir, 'app.json');
    writeFileSync(path, '{\n  "db_password": "hunter2" x\n}\n');
    const config = new ConfigProvider({
      source: fileSource(path),
      parse: (t: string) => JSON.parse(t),
    });
    const error = await refusal(() => config.start({ timeout: 5_000, failFast: true }));
    expect(error.message).toMatch(/line 2, column 28/);
    expect(inspect(error, { depth: 10 })).not.toContain('hunter2');
    await config.close();
  });
});

describe('start({ failFast })', () => {
  it('rejects at once with the first refusal instead of waiting for the timeout', async () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, '{"n": 1}');
    const config = new ConfigProvider({
      source: fileSource(path),
      parse: (t: string) => JSON.parse(t) as { n: number },
      validate: (c) => (c.n > 1 ? [] : ['n must be > 1']),
    });
    const started = Date.now();
    const error = await refusal(() => config.start({ timeout: 20_000, failFast: true }));
    expect(error.message).toMatch(/n must be > 1/);
    expect(Date.now() - started).toBeLessThan(10_000); // far below the 20 s timeout
    await config.close();
  });

  it('without it, a refused first value is waited past until a valid one comes', async () => {
    const path = join(dir, 'later.json');
    writeFileSync(path, '{"n": 1}');
    const config = new ConfigProvider({
      source: fileSource(path, { debounceMs: 5 }),
      parse: (t: string) => JSON.parse(t) as { n: number },
      validate: (c) => (c.n > 1 ? [] : ['n must be > 1']),
    });
    const first = new Promise((r) => config.events.once('rejected', r));
    const started = config.start({ timeout: 10_000 });
    await first;
    writeFileSync(path, '{"n": 2}');
    expect(await started).toEqual({ n: 2 });
    await config.close();
  });
});

describe('fileSource limits', () => {
  it('a FIFO is refused, not waited on; a file over maxBytes is refused unread', async () => {
    const fifo = join(dir, 'config.fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(fileSource(fifo).load()).rejects.toThrow(/not a regular file/);
    const big = join(dir, 'big.json');
    writeFileSync(big, 'x'.repeat(2_000));
    await expect(fileSource(big, { maxBytes: 1_000 }).load()).rejects.toThrow(
      /larger than the 1000-byte limit/,
    );
  });
});
