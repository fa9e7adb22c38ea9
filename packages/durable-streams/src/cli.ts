#!/usr/bin/env node
/**
 * `towerline-ds [--profile dev|prod|prod-tls|prod-mtls] [--config path]`: the Durable Streams
 * server. Configuration layers: defaults → profile → config/*.toml → --config → DS_* variables.
 * A startup failure prints `[phase] …` with the likely cause and exits non-zero.
 */
import { parseArgs } from 'node:util';
import { startApp } from './server/app.js';
import { loadConfig, type Profile, StartupError } from './server/config.js';

async function main(): Promise<void> {
  let values: { profile?: string; config?: string; 'config-dir'?: string };
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--')),
      options: {
        profile: { type: 'string' },
        config: { type: 'string' },
        'config-dir': { type: 'string' },
      },
    }));
  } catch (error) {
    throw new StartupError('load_config', (error as Error).message);
  }
  const config = loadConfig({
    profile: (values.profile ?? process.env.DS_PROFILE ?? 'default') as Profile,
    ...(values.config ? { configPath: values.config } : {}),
    ...(values['config-dir'] ? { configDir: values['config-dir'] } : {}),
  });
  const app = await startApp(config);
  const stop = async () => {
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  if (error instanceof StartupError) console.error(error.message);
  else console.error(`[start_server] ${(error as Error)?.message ?? error}`);
  process.exit(1);
});
