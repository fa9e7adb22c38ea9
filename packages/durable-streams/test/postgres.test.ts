import { Engine } from '@towerline/durable-streams';
import { describe, expect, it } from 'vitest';

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
