/**
 * Generated configurations, as a tired operator writes them: valid keys, misspelt keys,
 * unknown keys and tables, values of every type (negative, fractional, huge, NaN, lists where
 * scalars go, tables where lists go), broken TOML, and DS_* variables right and wrong. Through
 * `loadConfig` (a TOML file, the environment, both under a random profile) and `checkConfig`
 * (hand-built objects, as `startApp` receives them). Every input settles within 1 s; every
 * refusal is a `[load_config]`/`[validate_config]` StartupError (`ERR_CONFIG_INVALID`) or a
 * problem list, never a raw TypeError, and quotes no string value of the input; every accepted
 * config is a well-typed one. `TOWERLINE_FUZZ_CONFIG_RUNS` sets the count (default 5,000).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkConfig,
  loadConfig,
  PROFILES,
  StartupError,
  serverConfigSchema,
} from '@towerline/durable-streams';
import fc from 'fast-check';
import { stringify } from 'smol-toml';
import * as v from 'valibot';
import { afterAll, expect, it } from 'vitest';
import { FuzzStats } from '../../tls/test/support/fuzz-stats.js';
import { leavesOf } from '../src/server/schema-tools.js';

const RUNS = Number(process.env.TOWERLINE_FUZZ_CONFIG_RUNS ?? 5_000);
const BUDGET_MS = Number(process.env.TOWERLINE_FUZZ_BUDGET_MS ?? 120_000);
const dir = mkdtempSync(join(tmpdir(), 'towerline-ds-fuzz-'));
const none = mkdtempSync(join(dir, 'empty-config-dir-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LEAVES = leavesOf(serverConfigSchema);
const ALNUM = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
/** A string value no message may quote: nothing in the schema looks like it. */
const secret = fc
  .array(fc.constantFrom(...ALNUM), { minLength: 8, maxLength: 8 })
  .map((c) => `S3cr${c.join('')}`);

const typo = (key: string) =>
  fc
    .tuple(fc.nat(key.length - 1), fc.constantFrom('drop', 'swap', 'double', 'x'))
    .map(([i, op]) => {
      if (op === 'drop') return key.slice(0, i) + key.slice(i + 1);
      if (op === 'swap' && i + 1 < key.length)
        return key.slice(0, i) + key[i + 1] + key[i] + key.slice(i + 2);
      if (op === 'double') return key.slice(0, i) + key[i] + key.slice(i);
      return key.slice(0, i) + 'x' + key.slice(i + 1);
    });

/** A dotted key: a real one (mostly), a typo of one, a table name, or noise. */
const keyPath: fc.Arbitrary<string[]> = fc.oneof(
  { arbitrary: fc.constantFrom(...LEAVES.map((l) => l.path)), weight: 8 },
  {
    arbitrary: fc
      .constantFrom(...LEAVES)
      .chain((l) => typo(l.path.at(-1)!).map((last) => [...l.path.slice(0, -1), last])),
    weight: 2,
  },
  {
    arbitrary: fc.constantFrom<string[]>(
      ['limits'],
      ['transport'],
      ['proxy', 'identity'],
      ['log'],
      ['tls'],
      ['server', 'port'],
    ),
    weight: 1,
  },
  {
    arbitrary: fc.array(fc.stringMatching(/^[a-z_]{1,12}$/), { minLength: 1, maxLength: 3 }),
    weight: 1,
  },
);

const good: Record<string, fc.Arbitrary<unknown>> = {
  number: fc.integer({ min: 1, max: 3_600 }),
  boolean: fc.boolean(),
  string: fc.constantFrom('127.0.0.1:0', 'info', '/v1/stream', '*', './data', 'warn,hyper=debug'),
  list: fc.constantFrom([], ['http1'], ['http/1.1'], ['10.0.0.0/8']),
  choice: fc.constantFrom(
    'http',
    'tls',
    'mtls',
    'memory',
    'none',
    'x-forwarded',
    'header',
    '1.2',
    '1.3',
  ),
};

const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  secret,
  fc.constant(''),
  fc.integer({ min: -1_000_000, max: 1_000_000 }),
  fc.constantFrom(0, -5, 1e23, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, 1.5),
  fc.double({ noNaN: true }),
  fc.boolean(),
  fc.array(fc.oneof(secret, fc.integer(), fc.boolean()), { maxLength: 3 }),
  fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), secret, { maxKeys: 2 }),
);

const valueFor = (path: string[]) => {
  const leaf = LEAVES.find((l) => l.key === path.join('.'));
  return leaf
    ? fc.oneof({ arbitrary: good[leaf.kind]!, weight: 3 }, { arbitrary: anyValue, weight: 1 })
    : anyValue;
};

type Tree = Record<string, unknown>;
const entry = keyPath.chain((path) => valueFor(path).map((value) => ({ path, value })));
const tree = fc.array(entry, { maxLength: 8 }).map((entries) => {
  const out: Tree = {};
  for (const { path, value } of entries) {
    let node = out;
    for (const p of path.slice(0, -1)) {
      if (typeof node[p] !== 'object' || node[p] === null || Array.isArray(node[p])) node[p] = {};
      node = node[p] as Tree;
    }
    node[path.at(-1)!] = value;
  }
  return out;
});

const envName = fc.oneof(
  { arbitrary: fc.constantFrom(...LEAVES.map((l) => l.env)), weight: 4 },
  { arbitrary: fc.constantFrom(...LEAVES.map((l) => l.env)).chain(typo), weight: 1 },
  { arbitrary: fc.constantFrom('DS_TRANSPORT', 'DS_PROXY', 'DS_', 'DS_X__Y'), weight: 1 },
);
const envValue = fc.oneof(
  secret,
  fc.constantFrom(
    '',
    'true',
    'FALSE',
    '7',
    '-1',
    '1e23',
    '1.5',
    '[5]',
    '["h2"]',
    '[',
    'http1,http2',
    '127.0.0.1:0',
    'tls',
  ),
);
const env = fc.dictionary(envName, envValue, { maxKeys: 4 });

/** TOML text from a tree, sometimes broken on purpose. */
const document = fc
  .tuple(
    tree,
    fc.option(fc.tuple(fc.nat(), fc.constantFrom('[', '"', '=', ']]', '\n[x', ' = =', '\0')), {
      freq: 5,
    }),
  )
  .map(([t, cut]) => {
    let text: string;
    try {
      text = stringify(t);
    } catch {
      text = '';
    }
    if (cut) {
      const at = text.length === 0 ? 0 : cut[0] % text.length;
      text = text.slice(0, at) + cut[1] + text.slice(at);
    }
    return { tree: t, text };
  });

const stats = new FuzzStats();
const secretsOf = (x: unknown): string[] =>
  typeof x === 'string'
    ? x.startsWith('S3cr')
      ? [x]
      : []
    : typeof x === 'object' && x !== null
      ? Object.values(x).flatMap(secretsOf)
      : [];

function checkRefusal(error: unknown, secrets: string[]): void {
  if (!(error instanceof StartupError)) throw error;
  expect(['load_config', 'validate_config']).toContain(error.phase);
  expect(error.code).toBe('ERR_CONFIG_INVALID');
  for (const s of secrets)
    if (error.message.includes(s)) throw new Error(`a refusal quotes a value: ${error.message}`);
}

/** loadConfig, then the checks startApp makes first: what an operator would see. */
function loadAndCheck(options: Parameters<typeof loadConfig>[0]) {
  const config = loadConfig(options);
  const { problems } = checkConfig(config);
  if (problems.length > 0)
    throw new StartupError('validate_config', problems.join('; '), { problems });
  expect(v.is(serverConfigSchema, config)).toBe(true);
  return config;
}

it(
  `${RUNS} generated configs: each settles within 1 s, refused as a coded phase error without values, or accepted well-typed`,
  async () => {
    const started = performance.now();
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        document,
        env,
        fc.constantFrom(...PROFILES),
        fc.nat(99),
        async (doc, vars, profile, route) => {
          const path = join(dir, `c${++n % 50}.toml`);
          writeFileSync(path, doc.text);
          const secrets = [...secretsOf(doc.tree), ...secretsOf(vars)];
          if (route < 35) {
            const r = await stats.time('loadConfig (TOML file)', () =>
              loadAndCheck({ configDir: none, configPath: path, env: {} }),
            );
            if (!r.ok) checkRefusal(r.error, secrets);
          } else if (route < 60) {
            const r = await stats.time('loadConfig (DS_* variables)', () =>
              loadAndCheck({ configDir: none, env: vars }),
            );
            if (!r.ok) checkRefusal(r.error, secrets);
          } else if (route < 80) {
            const r = await stats.time('loadConfig (file + env + profile)', () =>
              loadAndCheck({ profile, configDir: none, configPath: path, env: vars }),
            );
            if (!r.ok) checkRefusal(r.error, secrets);
          } else {
            const r = await stats.time('checkConfig (hand-built object)', () => {
              const { problems } = checkConfig(doc.tree);
              if (problems.length > 0)
                throw new StartupError('validate_config', problems.join('; '), { problems });
            });
            if (!r.ok) checkRefusal(r.error, secrets);
          }
        },
      ),
      {
        numRuns: RUNS,
        seed: Number(process.env.TOWERLINE_FUZZ_SEED ?? 12),
        endOnFailure: true,
        interruptAfterTimeLimit: BUDGET_MS,
        markInterruptAsFailure: false,
      },
    );
    stats.report('config', performance.now() - started);
    for (const row of stats.rows.values()) expect(row.accepted).toBeGreaterThan(0);
  },
  BUDGET_MS + 60_000,
);
