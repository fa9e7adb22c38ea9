/**
 * A hot-reloaded config file checked by a schema, and what bad input looks like: a typo, a
 * wrong type, a secret on a broken line. Nothing printed quotes a value.
 *
 *   pnpm example examples/config-schema.ts
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigProvider, fileSource } from '@towerline/config';
import * as v from 'valibot'; // any Standard Schema library: zod, valibot, ArkType

const App = v.strictObject({
  listen: v.optional(v.string(), '127.0.0.1:8080'),
  db_password: v.pipe(v.string(), v.minLength(12)),
  rate_limit: v.optional(
    v.strictObject({ burst: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 10) }),
    {},
  ),
});

const dir = mkdtempSync(join(tmpdir(), 'towerline-example-'));
const path = join(dir, 'app.json');
writeFileSync(path, JSON.stringify({ db_password: 'correct horse battery' }));

const config = new ConfigProvider({
  name: 'app',
  source: fileSource(path, { debounceMs: 20 }),
  parse: (text: string) => JSON.parse(text), // any: the schema gives the type
  schema: App, // its output, defaults filled in, is the value
});
config.events.on('rejected', ({ error }) =>
  console.log(`refused, old value kept:\n${error.message}\n`),
);

// failFast: a bad file at startup is an error at once, not a wait for the timeout.
const first = await config.start({ timeout: 5_000, failFast: true });
console.log('started with', { ...first, db_password: '(hidden)' });

for (const text of [
  '{"db_password": "hunter2", "rate_limit": {"brust": 5}}', // too short; a typo
  '{\n  "db_password": "hunter2-hunter2" x\n}', // a syntax error on the secret's line
  '{"db_password": "correct horse battery staple", "rate_limit": {"burst": 50}}',
]) {
  writeFileSync(path, text);
  await new Promise((r) => setTimeout(r, 150));
}
console.log('now burst =', config.get().rate_limit.burst, `(version ${config.version})`);
await config.close();
rmSync(dir, { recursive: true, force: true });
