import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
