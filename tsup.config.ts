import { existsSync } from 'node:fs';
import { defineConfig } from 'tsup';

// Shared by every package: `tsup --config ../../tsup.config.ts` runs in the package folder.
// A package with a `src/cli.ts` also gets its command built.
export default defineConfig({
  entry: ['src/index.ts', ...(existsSync('src/cli.ts') ? ['src/cli.ts'] : [])],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
