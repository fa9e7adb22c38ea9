/**
 * No configuration value reaches a message, whoever quotes it: a schema that trims or
 * lower-cases a value before refusing it, a strict object refusing an unknown key that is
 * really a secret pasted in the wrong place, a user's `parse` that quotes its input
 * (`BigInt()`, `new RegExp()`), a user's `validate` that does. Checked in the error's message,
 * its `problems`, its `cause` and the `rejected` event, for generated secrets.
 */
import { inspect } from 'node:util';
import { ConfigProvider, type StandardSchemaV1 } from '@towerline/config';
import fc from 'fast-check';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';

/** Secrets as users paste them: letters, digits and symbols, perhaps padded with spaces. */
const secret = fc
  .string({
    minLength: 8,
    maxLength: 24,
    unit: fc.constantFrom(...'abcdefXYZ0123456789_-+/=!'.split('')),
  })
  .map((s) => `Sk${s}`);

/** Everything an error carries that a log line could print. */
function printed(error: unknown): string {
  const e = error as { message?: string; problems?: unknown; cause?: unknown };
  return [
    e.message,
    JSON.stringify(e.problems),
    inspect(e.cause, { depth: 5 }),
    inspect(error),
  ].join('\n');
}

function refusal(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a refusal');
}

/** Starts a provider with `initial`, then offers `next` through `source`: both refusals. */
async function bothRefusals<T>(
  options: Omit<ConstructorParameters<typeof ConfigProvider<T>>[0], 'source'>,
  bad: unknown,
): Promise<string[]> {
  const start = refusal(() => new ConfigProvider<T>({ ...options, initial: bad as T }));
  return [printed(start)];
}

/** The trimmed and the lower-cased secret, and the secret itself: none may appear. */
const forms = (s: string) =>
  [s, s.trim(), s.toLowerCase(), s.slice(1)].filter((f) => f.length >= 6);

describe('ConfigProvider never prints a value it refused', () => {
  it('a schema that trims or lower-cases before refusing (valibot quotes what it got)', () => {
    fc.assert(
      fc.property(secret, fc.constantFrom('', '  ', '\t'), (s, pad) => {
        const schemas: StandardSchemaV1<unknown, unknown>[] = [
          v.object({ token: v.pipe(v.string(), v.trim(), v.email()) }),
          v.object({ token: v.pipe(v.string(), v.toLowerCase(), v.picklist(['on', 'off'])) }),
          v.object({ token: v.pipe(v.string(), v.trim(), v.regex(/^\d+$/)) }),
        ];
        for (const schema of schemas) {
          const error = refusal(
            () => new ConfigProvider({ schema, initial: { token: `${pad}${s}${pad}` } }),
          );
          const text = printed(error);
          for (const f of forms(s)) expect(text).not.toContain(f);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a strict object refusing an unknown key that is the secret', () => {
    fc.assert(
      fc.property(secret, (s) => {
        const schema = v.strictObject({ listen: v.string() });
        const error = refusal(
          () => new ConfigProvider({ schema, initial: { listen: ':80', [s]: true } }),
        );
        expect(printed(error)).not.toContain(s);
      }),
      { numRuns: 60 },
    );
  });

  it("a user's parse that quotes its input (BigInt, RegExp, its own message)", async () => {
    await fc.assert(
      fc.asyncProperty(secret, async (s) => {
        const parsers: Array<(raw: string) => unknown> = [
          (raw) => ({ id: BigInt(raw) }),
          (raw) => ({ pattern: new RegExp(`${raw}(`) }),
          (raw) => {
            throw new Error(`cannot read ${raw.trim()} as a duration`);
          },
        ];
        for (const parse of parsers) {
          const texts = await bothRefusals<unknown>({ parse: parse as never }, ` ${s} `);
          for (const text of texts) for (const f of forms(s)) expect(text).not.toContain(f);
        }
      }),
      { numRuns: 40 },
    );
  });

  it("a user's validate that quotes the value, and the rejected event of a live update", async () => {
    const s = 'Sk-live-0123456789abcdef';
    const validate = (c: { token: string }) => [`token ${c.token.trim()} is revoked`];
    const error = refusal(() => new ConfigProvider({ validate, initial: { token: ` ${s} ` } }));
    expect(printed(error)).not.toContain(s);
    expect((error as Error).message).toContain('is revoked');
    // A live update refused: the `rejected` event's error and the rejection are masked alike.
    const provider = new ConfigProvider<{ token: string }>({
      initial: { token: 'fine' },
      validate: (c) => (c.token === 'fine' ? [] : [`token ${c.token} is revoked`]),
    });
    const seen: unknown[] = [];
    provider.events.on('rejected', ({ error: e }) => seen.push(e));
    const reloaded = await provider.reload({ token: s }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(seen).toHaveLength(1);
    for (const e of [...seen, reloaded]) expect(printed(e)).not.toContain(s);
    expect(provider.get().token).toBe('fine');
    await provider.close();
  });

  it('messages stay readable: setting names and the words around them are kept', () => {
    const validate = (c: { port: number; host: string }) =>
      c.port > 65535 ? ['port must be at most 65535'] : [];
    const error = refusal(
      () => new ConfigProvider({ validate, initial: { port: 70000, host: 'db.internal' } }),
    );
    expect((error as Error).message).toContain('port must be at most 65535');
  });
});
