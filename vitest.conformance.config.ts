import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `pnpm conformance`: the public Durable Streams conformance suite against our server.
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
    include: ['test/conformance/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', ['json', { outputFile: '.vitest/conformance.json' }]],
  },
});
