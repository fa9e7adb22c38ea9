/**
 * History at size, per storage mode: 10^6 appends (after 10^5 that bring allocator and heap to
 * their working size), then the process killed with -9 and the data directory opened again,
 * then opened once more after a clean close. Each step is its own process (ds-fill.ts), so
 * every RSS is that process's own. Memory per append is the RSS growth over the 10^6, minus
 * the payload itself in memory mode.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childExecArgv } from './built.js';

const script = join(dirname(fileURLToPath(import.meta.url)), 'ds-fill.ts');
export const WARM = 100_000;
export const APPENDS = 1_000_000;

export interface HistoryRow {
  mode: string;
  appendsPerSecond: number;
  rssMB: number;
  bytesPerAppend: number;
  indexBytesPerAppend: number;
  groupSize: number;
  startAfterKillMs?: number;
  batchesReplayed?: number;
  rssAfterStartMB?: number;
  startAfterCloseMs?: number;
}

async function step(args: string[], kill: boolean): Promise<Record<string, number>> {
  const child = fork(script, args, {
    execArgv: [...childExecArgv, '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [m] = (await once(child, 'message')) as [Record<string, number>];
  if (kill) child.kill('SIGKILL');
  await once(child, 'exit');
  return m;
}

const mb = (n: number) => +(n / 1024 / 1024).toFixed(1);

export async function history(mode: string): Promise<HistoryRow> {
  const dir = mkdtempSync(join(tmpdir(), `ds-history-${mode}-`));
  try {
    const f = await step(['fill', mode, dir, String(WARM), String(APPENDS)], true);
    const commits = f.commits as unknown as { batches: number; records: number };
    const grown = f.rssAfter! - f.rssBefore! - (mode === 'memory' ? APPENDS * 100 : 0);
    const row: HistoryRow = {
      mode,
      appendsPerSecond: Math.round(APPENDS / (f.fillMs! / 1000)),
      rssMB: mb(f.rssAfter!),
      bytesPerAppend: +(grown / APPENDS).toFixed(1),
      indexBytesPerAppend: +(f.indexBytes! / (APPENDS + WARM)).toFixed(1),
      groupSize: commits.batches ? Math.round(commits.records / commits.batches) : 1,
    };
    if (mode === 'memory') return row;
    const crashed = await step(['open', mode, dir], false);
    const clean = await step(['open', mode, dir], false);
    return {
      ...row,
      startAfterKillMs: Math.round(crashed.openMs!),
      batchesReplayed: crashed.replayed!,
      rssAfterStartMB: mb(crashed.rssOpen!),
      startAfterCloseMs: Math.round(clean.openMs!),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
