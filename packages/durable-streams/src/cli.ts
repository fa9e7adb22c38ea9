#!/usr/bin/env node
/**
 * `towerline-ds [--profile NAME] [--config FILE] [--config-dir DIR]`: the Durable Streams
 * server. Configuration layers: defaults → profile → config/*.toml → --config → DS_* variables.
 * A startup failure prints `[phase] …` with the likely cause; exit codes: 0 ok, 1 runtime,
 * 2 bad configuration or usage (`--help` lists them all).
 */
import { parseArgs } from 'node:util';
import pkg from '../package.json' with { type: 'json' };
import { EXIT_CODES, helpText } from './cli-help.js';
import { startApp } from './server/app.js';
import { loadConfig, PROFILES, type Profile, StartupError } from './server/config.js';
import { nearest, showName } from './server/suggest.js';

const FLAGS = ['--profile', '--config', '--config-dir', '--help', '--version'];
const TAKES_VALUE = new Set(['--profile', '--config', '--config-dir']);
/** The flags that take no value, long and short. */
const BARE: Record<string, string> = { '--help': '-h', '--version': '-V' };
const SHORT: Record<string, string> = { h: '--help', V: '--version' };

class UsageError extends Error {}

/**
 * The first misuse of a flag's value in `argv`, named: `--help=1` (takes no value), `-h1`,
 * `--config` last or followed by another flag (needs a value). Never quotes the value.
 */
function valueProblem(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq === -1 ? a : a.slice(0, eq);
      if (name in BARE && eq !== -1) return `${name} takes no value`;
      if (TAKES_VALUE.has(name) && eq === -1) {
        const next = argv[i + 1];
        if (next === undefined || next.startsWith('-'))
          return `${name} needs a value (${name}=VALUE or ${name} VALUE)`;
        i++;
      }
    } else if (a.length > 2 && a.startsWith('-')) {
      // A group of short flags (-hV); a short flag with anything else after it had a value.
      const first = a[1]!;
      if (first in SHORT && ![...a.slice(2)].every((c) => c in SHORT))
        return `-${first} (${SHORT[first]}) takes no value`;
    }
  }
  return undefined;
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        profile: { type: 'string' },
        config: { type: 'string' },
        'config-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    }).values;
  } catch (error) {
    const misuse = valueProblem(argv);
    if (misuse) throw new UsageError(misuse);
    const bad = argv.find((a) => a.startsWith('-') && !FLAGS.includes(a.split('=')[0]!));
    const code = (error as { code?: string }).code;
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL')
      throw new UsageError('unexpected argument (this command takes options only)');
    if (bad !== undefined && code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const near = nearest(bad.split('=')[0]!, FLAGS);
      throw new UsageError(
        `unknown option ${showName(bad.split('=')[0]!)}${near ? ` (did you mean ${near}?)` : ''}`,
      );
    }
    throw new UsageError(
      `${code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' ? 'an option needs a value' : 'invalid arguments'}`,
    );
  }
}

async function main(argv: string[]): Promise<void> {
  const values = parse(argv);
  if (values.help) {
    process.stdout.write(helpText());
    return;
  }
  if (values.version) {
    process.stdout.write(`${pkg.name} ${pkg.version}\n`);
    return;
  }
  const profile = values.profile ?? process.env.DS_PROFILE ?? 'default';
  const config = loadConfig({
    profile: profile as Profile,
    ...(values.config ? { configPath: values.config } : {}),
    ...(values['config-dir'] ? { configDir: values['config-dir'] } : {}),
  });
  const app = await startApp(config);
  const stop = async () => {
    await app.close();
    process.exit(EXIT_CODES.ok);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

// `pnpm ds-server -- --help` passes the `--` through.
const argv = process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--'));
main(argv).catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(
      `towerline-ds: ${error.message}\nRun towerline-ds --help for usage; profiles: ${PROFILES.join(', ')}.`,
    );
    process.exit(EXIT_CODES.config);
  }
  if (error instanceof StartupError) {
    console.error(error.message);
    process.exit(error.exitCode);
  }
  console.error(`[start_server] ${(error as Error)?.message ?? error}`);
  process.exit(EXIT_CODES.runtime);
});
