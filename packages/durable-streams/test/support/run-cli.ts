import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The repository root: where `tsx` resolves, and a directory without a `config/`. */
export const REPO = resolve(__dirname, '../../../..');
const CLI = join(REPO, 'packages/durable-streams/src/cli.ts');

/**
 * Runs the real `towerline-ds` as `pnpm ds-server -- …` does (with the `--`), until it exits
 * (killed after 20 s). `asUser` runs it under another uid/gid (tests as root use `nobody`).
 */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; asUser?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', CLI, '--', ...args],
      {
        cwd: REPO,
        env: { PATH: process.env.PATH ?? '', TMPDIR: tmpdir(), ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(options.asUser === undefined ? {} : { uid: options.asUser, gid: options.asUser }),
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', fail);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}
