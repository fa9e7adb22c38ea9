import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const towerline = {
  find: /^@towerline\/([a-z-]+)$/,
  replacement: fileURLToPath(new URL('./packages/$1/src/index.ts', import.meta.url)),
};

// Tests import packages by name; the alias points them at `src/`, so `pnpm test` needs no
// build step (scripts get the same from the `source` export condition).
export default defineConfig({
  resolve: { alias: [towerline] },
  test: {
    reporters: ['default', ['json', { outputFile: '.vitest/report.json' }]],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Leak tests compare heaps after a full collection.
    execArgv: ['--expose-gc'],
    projects: [
      {
        extends: true,
        test: {
          name: 'towerline',
          include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['**/node_modules/**', 'test/bench/**'],
          typecheck: {
            enabled: true,
            include: ['packages/*/test/**/*.test-d.ts', 'test/**/*.test-d.ts'],
            tsconfig: './tsconfig.json',
          },
        },
      },
      {
        // The ioredis adapter's suite once more against the other supported major: `ioredis`
        // is ioredis 6 here (the devDependency alias `ioredis6`), ioredis 5 above.
        extends: true,
        resolve: { alias: [towerline, { find: /^ioredis$/, replacement: 'ioredis6' }] },
        test: {
          name: 'ioredis6',
          include: ['packages/ioredis/test/**/*.test.ts'],
          env: { TOWERLINE_TEST_IOREDIS: 'ioredis6' },
        },
      },
    ],
  },
});
