import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// `pnpm conformance`: only the public Durable Streams conformance suite against our server.
export default defineConfig({
  resolve: base.resolve,
  test: {
    include: ['test/conformance/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', ['json', { outputFile: '.vitest/conformance.json' }]],
  },
});
