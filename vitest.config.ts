import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import packages by name; the alias points them at `src/`, so `pnpm test` needs no
// build step (scripts get the same from the `source` export condition).
export default defineConfig({
  resolve: {
    alias: [
      {
        find: /^@towerline\/([a-z-]+)$/,
        replacement: fileURLToPath(new URL('./packages/$1/src/index.ts', import.meta.url)),
      },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'test/bench/**'],
    typecheck: {
      enabled: true,
      include: ['packages/*/test/**/*.test-d.ts', 'test/**/*.test-d.ts'],
      tsconfig: './tsconfig.json',
    },
    reporters: ['default', ['json', { outputFile: '.vitest/report.json' }]],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Leak tests compare heaps after a full collection.
    execArgv: ['--expose-gc'],
  },
});
