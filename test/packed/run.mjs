#!/usr/bin/env node
// Packed-artifact tests: what a user installs, not the sources the other tests run.
//
//   node test/packed/run.mjs [--skip-build] [--keep]
//
// Builds, `pnpm pack`s every package, checks each tarball (contents, published exports,
// dependency ranges, publint, @arethetypeswrong/cli), installs all of them with ioredis 6 into
// a fresh project outside the repository (`npm install`, no flags), and runs the consumers: an
// ES module, a CommonJS module (also with require(esm) turned off, as Node < 20.19 behaves),
// and tsc under moduleResolution node16 and bundler. Prints the matrix; exits 1 on a failure.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const here = dirname(fileURLToPath(import.meta.url));
const args = new Set(process.argv.slice(2));
const bin = (name) => join(repo, 'node_modules', '.bin', name);
const rootPkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));

const results = [];
function run(label, cmd, argv, options = {}) {
  const started = performance.now();
  const r = spawnSync(cmd, argv, {
    encoding: 'utf8',
    timeout: options.timeout ?? 300_000,
    cwd: options.cwd ?? repo,
    env: { ...process.env, ...options.env },
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const ok = r.status === 0;
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
  if (options.record !== false) results.push({ label, ok, seconds });
  if (!ok || options.print) process.stdout.write(output.endsWith('\n') ? output : `${output}\n`);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${label} (${seconds} s)`);
  return { ok, output };
}
function check(label, ok, detail = '') {
  results.push({ label, ok, seconds: '-' });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${label}${detail ? `: ${detail}` : ''}`);
}

if (!args.has('--skip-build')) run('pnpm build', 'pnpm', ['build'], { record: false });

const tmp = mkdtempSync(join(tmpdir(), 'towerline-packed-'));
const tarballs = join(tmp, 'tarballs');
const packages = readdirSync(join(repo, 'packages'))
  .map((dir) => ({ dir: join(repo, 'packages', dir), name: dir }))
  .filter(({ dir }) => !JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).private);

console.log(`\n== pack ${packages.length} packages into ${tarballs}`);
const packed = [];
for (const p of packages) {
  const r = run(`pack @towerline/${p.name}`, 'pnpm', ['pack', '--pack-destination', tarballs], {
    cwd: p.dir,
    record: false,
  });
  if (!r.ok) process.exit(1);
  const file = readdirSync(tarballs).find((f) => f.startsWith(`towerline-${p.name}-`));
  packed.push({ ...p, tgz: join(tarballs, file) });
}

console.log('\n== tarball contents');
for (const p of packed) {
  const list = spawnSync('tar', ['tzf', p.tgz], { encoding: 'utf8' }).stdout.split('\n');
  const manifest = JSON.parse(
    spawnSync('tar', ['xzf', p.tgz, '-O', 'package/package.json'], { encoding: 'utf8' }).stdout,
  );
  const problems = [];
  for (const f of [
    'README.md',
    'LICENSE',
    'dist/index.js',
    'dist/index.cjs',
    'dist/index.d.ts',
    'dist/index.d.cts',
  ]) {
    if (!list.includes(`package/${f}`)) problems.push(`no ${f}`);
  }
  if (list.some((f) => f.startsWith('package/src/'))) problems.push('ships src/');
  if (JSON.stringify(manifest.exports).includes('"source"'))
    problems.push('publishes the source condition');
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
      if (String(range).startsWith('workspace:')) problems.push(`${dep}: ${range}`);
      if (dep.startsWith('@towerline/') && !String(range).startsWith('^'))
        problems.push(`${dep} pinned: ${range}`);
    }
  }
  for (const field of ['repository', 'homepage', 'bugs', 'keywords', 'license']) {
    if (!manifest[field]) problems.push(`no ${field}`);
  }
  if (manifest.publishConfig?.access !== 'public')
    problems.push('publishConfig.access is not public');
  check(`contents @towerline/${p.name}`, problems.length === 0, problems.join('; '));
}

console.log('\n== publint and @arethetypeswrong/cli');
for (const p of packed) {
  run(`publint @towerline/${p.name}`, bin('publint'), ['run', p.tgz, '--strict'], { print: true });
  run(
    `attw @towerline/${p.name}`,
    bin('attw'),
    [p.tgz, '--format', 'table-flipped', '--no-color', '--no-emoji'],
    {
      print: true,
    },
  );
}

console.log('\n== a fresh consumer project outside the repository');
const consumer = join(tmp, 'consumer');
cpSync(join(here, 'consumer'), consumer, { recursive: true });
writeFileSync(
  join(consumer, 'package.json'),
  `${JSON.stringify({ name: 'towerline-consumer', version: '0.0.0', private: true }, null, 2)}\n`,
);
const installed = run(
  'npm install <tarballs> ioredis@6 (no flags)',
  'npm',
  [
    'install',
    ...packed.map((p) => p.tgz),
    'ioredis@6',
    `typescript@${rootPkg.devDependencies.typescript}`,
    `@types/node@${rootPkg.devDependencies['@types/node']}`,
    // A TypeScript user of @towerline/pg installs pg's types (an optional peer).
    `@types/pg@${rootPkg.devDependencies['@types/pg']}`,
    // ioredis 6.1's declarations import `redis-errors`, whose types it does not depend on: a
    // TypeScript user of ioredis 6.1 installs them (README, @towerline/ioredis).
    '@types/redis-errors@1.2.3',
    '--no-audit',
    '--no-fund',
  ],
  { cwd: consumer, timeout: 600_000 },
);
if (installed.ok) {
  const ls = run('npm ls (no missing or invalid peer)', 'npm', ['ls', '--all'], {
    cwd: consumer,
    record: false,
  });
  // Optional peers nobody asked for (better-sqlite3, @types/pg) are listed as UNMET OPTIONAL: fine.
  check(
    'npm ls (no missing or invalid peer)',
    ls.ok && !/\binvalid\b|UNMET DEPENDENCY|UNMET PEER/.test(ls.output),
  );
  const ioredis = JSON.parse(
    readFileSync(join(consumer, 'node_modules/ioredis/package.json'), 'utf8'),
  );
  check(
    'ioredis installed beside @towerline/ioredis',
    ioredis.version.startsWith('6.'),
    ioredis.version,
  );
  const sqlite = readdirSync(join(consumer, 'node_modules')).includes('better-sqlite3');
  check('better-sqlite3 not installed (optional peer)', !sqlite);

  console.log('\n== consumers');
  const node = (label, argv) =>
    run(label, process.execPath, argv, { cwd: consumer, print: true, timeout: 60_000 });
  node('ESM (.mjs)', ['smoke.mjs']);
  node('ESM (.mjs), --conditions=source', ['--conditions=source', 'smoke.mjs']);
  node('CJS (.cjs)', ['smoke.cjs', 'cjs']);
  node('CJS (.cjs), require(esm) off (as Node < 20.19)', [
    '--no-experimental-require-module',
    'smoke.cjs',
    'cjs-no-require-esm',
  ]);
  const tsc = join(consumer, 'node_modules', '.bin', 'tsc');
  run('TypeScript moduleResolution node16 (.mts + .cts), tsc --noEmit', tsc, ['-p', 'ts-node16'], {
    cwd: consumer,
    print: true,
  });
  run(
    'TypeScript moduleResolution bundler + customConditions ["source"], tsc --noEmit',
    tsc,
    ['-p', 'ts-bundler'],
    { cwd: consumer, print: true },
  );
  // Each package README's example, type-checked against the installed tarballs.
  const readmes = join(consumer, 'readme');
  mkdirSync(readmes);
  for (const p of packed) {
    const text = readFileSync(join(p.dir, 'README.md'), 'utf8');
    const blocks = [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
    writeFileSync(join(readmes, `${p.name}.ts`), `${blocks.join('\n')}\nexport {};\n`);
  }
  writeFileSync(
    join(readmes, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2023', 'ESNext.Disposable'],
        module: 'esnext',
        moduleResolution: 'bundler',
        types: ['node'],
        strict: true,
        noEmit: true,
        skipLibCheck: true,
      },
      include: ['*.ts'],
    }),
  );
  run('README examples, tsc --noEmit against the tarballs', tsc, ['-p', 'readme'], {
    cwd: consumer,
    print: true,
  });
}

if (args.has('--keep')) console.log(`\nkept ${tmp}`);
else rmSync(tmp, { recursive: true, force: true });

console.log('\n| check | result | seconds |\n|---|---|---|');
for (const r of results) console.log(`| ${r.label} | ${r.ok ? 'pass' : 'FAIL'} | ${r.seconds} |`);
const failed = results.filter((r) => !r.ok).length;
console.log(`\npacked: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
