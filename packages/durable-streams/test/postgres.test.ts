import { Engine } from '@towerline/durable-streams';
import { describe, expect, it } from 'vitest';
import { permanentPgFailure } from '../src/server/engine/pg-check.js';
import { failingStart } from './support/server-process.js';

describe('postgres storage: refused before a connection is made', () => {
  it('without a URL, and with a schema that is not a plain identifier', async () => {
    await expect(Engine.open({ mode: 'postgres' })).rejects.toMatchObject({
      code: 'ERR_STORAGE_FAILED',
      message: expect.stringMatching(/needs a database URL/),
    });
    await expect(
      Engine.open({
        mode: 'postgres',
        postgresUrl: 'postgres://127.0.0.1:1/x',
        postgresSchema: 'x"; DROP TABLE y; --',
      }),
    ).rejects.toMatchObject({
      code: 'ERR_STORAGE_FAILED',
      message: expect.stringMatching(/schema/),
    });
  });
});

describe('postgres storage: a refusal no retry can change fails at start, at once', () => {
  const host = new URL(process.env.TOWERLINE_PG_URL ?? 'postgres://127.0.0.1:5432/test').host;
  const open = (url: string) =>
    Engine.open({ mode: 'postgres', postgresUrl: url, postgresSchema: 'ds_refused' });

  it.each([
    [
      'an unknown database',
      `postgres://postgres@${host}/no_such_db_ds`,
      /database does not exist \(SQLSTATE 3D000\)/,
    ],
    [
      'an unknown role',
      `postgres://no_such_role_ds@${host}/test`,
      /role does not exist .*SQLSTATE 28000/,
    ],
    ['port 99999', 'postgres://postgres@127.0.0.1:99999/test', /URL is invalid/],
    [
      'port 0 (as a parameter)',
      `postgres://postgres@${host}/test?port=0`,
      /URL is invalid: the port/,
    ],
    ['a malformed host', 'postgres://postgres@bad_host!/test', /URL is invalid: the host/],
  ])('%s: refused with the reason, not after 15 s of retries', async (_, url, reason) => {
    const started = performance.now();
    const error = await open(url).catch((e: Error) => e);
    expect(error).toMatchObject({
      code: 'ERR_STORAGE_FAILED',
      message: expect.stringMatching(reason),
    });
    expect((error as Error).message).not.toMatch(/within \d+ ms/);
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('the CLI exits 1 naming the reason, never quoting the password or the URL', async () => {
    const url = `postgres://no_such_role_ds:hunter2-s3cret@${host}/test`;
    const { code, output } = await failingStart({
      DS_STORAGE__MODE: 'postgres',
      DS_STORAGE__POSTGRES_URL: url,
      DS_SERVER__BIND_ADDRESS: '127.0.0.1:0',
    });
    expect(code).toBe(1);
    expect(output).toMatch(
      /^\[start_server\] storage postgres .*PostgreSQL refused the connection: .*SQLSTATE 28000/m,
    );
    expect(output).not.toContain('hunter2-s3cret');
    expect(output).not.toContain(url);
    expect(output).not.toContain('no_such_role_ds');
  });

  it('a wrong password (28P01) is permanent; a refused or dropped connection is waited for', () => {
    // Under trust authentication no password is wrong: the classification is checked here.
    expect(permanentPgFailure({ code: '28P01' })).toMatch(/password authentication failed/);
    expect(permanentPgFailure({ code: '28000' })).toBeDefined();
    expect(permanentPgFailure({ code: '3D000' })).toBeDefined();
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', '57P03', '08006', undefined])
      expect(permanentPgFailure({ code })).toBeUndefined();
  });
});
