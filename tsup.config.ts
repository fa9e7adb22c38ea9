import { defineConfig } from 'tsup';

// Shared by every package: `tsup --config ../../tsup.config.ts` runs in the package folder.
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
