import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  createWriteStream,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_KEYS, PROFILES } from '@towerline/durable-streams';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO, runCli } from './support/run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'towerline-ds-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const run = (args: string[], env: Record<string, string> = {}) => runCli(args, { env });

describe('towerline-ds CLI', () => {
  it('--help lists every flag, profile, key and variable, the env convention, config files and exit codes', async () => {
    const { code, stdout, stderr } = await run(['--help']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    for (const flag of ['--profile', '--config', '--config-dir', '--help', '--version'])
      expect(stdout).toContain(flag);
    for (const profile of PROFILES) expect(stdout).toContain(profile);
    for (const key of CONFIG_KEYS) {
      expect(stdout).toContain(key.key);
      expect(stdout).toContain(key.env);
    }
    expect(stdout).toContain('DS_<SECTION>__<KEY>');
    expect(stdout).toMatch(/default\.toml.*<profile>\.toml.*local\.toml/s);
    expect(stdout).toMatch(/Exit codes:\n {2}0 .*\n {2}1 .*\n(.*\n)? {2}2 /);
    expect(stdout).not.toContain('load_config] Unknown option');
  });

  it('-h is --help; --version and -V print the package version', async () => {
    const version = JSON.parse(
      readFileSync(join(REPO, 'packages/durable-streams/package.json'), 'utf8'),
    ).version;
    expect((await run(['-h'])).stdout).toContain('Usage: towerline-ds');
    for (const flag of ['--version', '-V']) {
      const { code, stdout } = await run([flag]);
      expect(code).toBe(0);
      expect(stdout.trim()).toBe(`@towerline/durable-streams ${version}`);
    }
  });

  it('an unknown option is a usage error (exit 2) naming the nearest flag, not a TOML error', async () => {
    const { code, stderr } = await run(['--confg', 'x.toml']);
    expect(code).toBe(2);
    expect(stderr).toContain('unknown option --confg (did you mean --config?)');
    expect(stderr).not.toContain('TOML');
  });

  it('a misspelt key exits 2 naming the right one; a missing value too', async () => {
    const path = join(dir, 'typo.toml');
    writeFileSync(path, '[server]\nbind_adress = "127.0.0.1:4437"\n');
    const typo = await run(['--config', path]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(
      /^\[load_config\] unknown key server\.bind_adress in .*typo\.toml line 2: did you mean server\.bind_address\?/,
    );
    const env = await run([], { DS_SERVER__BIND_ADRESS: '127.0.0.1:4437' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('did you mean DS_SERVER__BIND_ADDRESS?');
    const profile = await run(['--profile', 'prod-tsl']);
    expect(profile.code).toBe(2);
    expect(profile.stderr).toContain('unknown profile prod-tsl (did you mean prod-tls?)');
    expect((await run(['--config'])).code).toBe(2);
  });
});

describe('towerline-ds CLI: flags and the files they name', () => {
  it('a flag that takes no value says so, naming the flag; one that needs a value too', async () => {
    for (const [args, message] of [
      [['--help=1'], '--help takes no value'],
      [['--version=yes'], '--version takes no value'],
      [['--help='], '--help takes no value'],
      [['-h=1'], '-h (--help) takes no value'],
      [['-V1'], '-V (--version) takes no value'],
      [['--config'], '--config needs a value'],
      [['--profile', '--help'], '--profile needs a value'],
      [['--config-dir'], '--config-dir needs a value'],
    ] as const) {
      const { code, stdout, stderr } = await run([...args]);
      expect(code, args.join(' ')).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toContain(`towerline-ds: ${message}`);
      expect(stderr).not.toContain('an option needs a value');
    }
    expect((await run(['-hV'])).stdout).toContain('Usage: towerline-ds');
  });

  it('a --config-dir that does not exist or is a file is a config error naming it', async () => {
    const missing = join(dir, 'no-such-config-dir');
    const gone = await run(['--config-dir', missing]);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(
      /^\[load_config\] --config-dir .*no-such-config-dir does not exist/,
    );
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const notDir = await run([`--config-dir=${file}`]);
    expect(notDir.code).toBe(2);
    expect(notDir.stderr).toMatch(/^\[load_config\] --config-dir .*a-file is not a directory/);
  });

  it('a config FIFO, device or config-dir file is read up to 4 MiB, then refused', async () => {
    const env = { DS_SERVER__BIND_ADDRESS: '127.0.0.1:0' };
    // A FIFO with more than 4 MiB of valid TOML (comments): refused, not read to the end.
    const fifo = join(dir, 'config.fifo');
    execFileSync('mkfifo', [fifo]);
    const writer = createWriteStream(fifo);
    writer.on('error', () => {}); // EPIPE once the server stops reading
    const line = `# ${'x'.repeat(1021)}\n`;
    const room = () =>
      new Promise<void>((resolve) => {
        const done = () => {
          writer.off('drain', done).off('close', done);
          resolve();
        };
        writer.on('drain', done).on('close', done);
      });
    const feed = (async () => {
      for (let i = 0; i < 5 * 1024 && !writer.destroyed; i++) if (!writer.write(line)) await room();
      writer.end();
    })();
    const piped = await run(['--config', fifo], env);
    // Had it never opened the FIFO, the writer's open would wait for a reader: be one.
    if (writer.pending) closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
    writer.destroy();
    await feed;
    expect(piped.code).toBe(2);
    expect(piped.stderr).toMatch(
      /^\[load_config\] .*config\.fifo is larger than 4 MiB, the limit for a config file/,
    );
    expect(piped.stderr).not.toContain('xxxx');
    const zero = await run(['--config', '/dev/zero'], env);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('/dev/zero is larger than 4 MiB');
    const d = mkdtempSync(join(dir, 'cfg-'));
    symlinkSync('/dev/zero', join(d, 'local.toml'));
    const local = await run(['--config-dir', d], env);
    expect(local.code).toBe(2);
    expect(local.stderr).toMatch(/local\.toml is larger than 4 MiB/);
  });
});
