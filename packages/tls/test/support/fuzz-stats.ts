import { mkdirSync, writeFileSync } from 'node:fs';

/** Per-loader tallies of a fuzz run: inputs, accepted, refused, the slowest input. */
export class FuzzStats {
  readonly rows = new Map<
    string,
    {
      tried: number;
      accepted: number;
      refused: number;
      slowestMs: number;
      totalMs: number;
      reasons: Map<string, number>;
    }
  >();

  /** Times `run`; settles within `limitMs` or reports the input as hung. */
  async time<T>(
    loader: string,
    run: () => Promise<T> | T,
    limitMs = 1_000,
  ): Promise<{ ok: true; value: T; ms: number } | { ok: false; error: unknown; ms: number }> {
    const row = this.#row(loader);
    row.tried++;
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${loader}: an input did not settle within ${limitMs} ms`)),
        limitMs,
      );
    });
    try {
      const value = await Promise.race([Promise.resolve().then(run), hang]);
      const ms = performance.now() - started;
      if (ms > limitMs) throw new Error(`${loader}: an input did not settle within ${limitMs} ms`);
      row.accepted++;
      row.totalMs += ms;
      row.slowestMs = Math.max(row.slowestMs, ms);
      return { ok: true, value, ms };
    } catch (error) {
      const ms = performance.now() - started;
      if ((error as Error)?.message?.includes('did not settle')) throw error;
      if (ms > limitMs) throw new Error(`${loader}: an input did not settle within ${limitMs} ms`);
      row.refused++;
      row.totalMs += ms;
      row.slowestMs = Math.max(row.slowestMs, ms);
      const reason = reasonOf(error);
      row.reasons.set(reason, (row.reasons.get(reason) ?? 0) + 1);
      return { ok: false, error, ms };
    } finally {
      clearTimeout(timer);
    }
  }

  #row(loader: string) {
    const row = this.rows.get(loader) ?? {
      tried: 0,
      accepted: 0,
      refused: 0,
      slowestMs: 0,
      totalMs: 0,
      reasons: new Map<string, number>(),
    };
    this.rows.set(loader, row);
    return row;
  }

  /** Prints the table and writes `.vitest/fuzz-<suite>.json`. */
  report(suite: string, wallMs: number): void {
    const lines = [`fuzz ${suite} (${(wallMs / 1000).toFixed(1)} s):`];
    const json: Record<string, unknown> = {};
    for (const [loader, r] of this.rows) {
      lines.push(
        `  ${loader.padEnd(34)} tried ${String(r.tried).padStart(6)}  accepted ${String(r.accepted).padStart(6)}  refused ${String(r.refused).padStart(6)}  slowest ${r.slowestMs.toFixed(1)} ms  mean ${(r.totalMs / Math.max(1, r.tried)).toFixed(2)} ms`,
      );
      json[loader] = {
        ...r,
        reasons: Object.fromEntries([...r.reasons].sort((a, b) => b[1] - a[1])),
      };
    }
    console.log(lines.join('\n'));
    mkdirSync('.vitest', { recursive: true });
    writeFileSync(
      `.vitest/fuzz-${suite}.json`,
      `${JSON.stringify({ wallMs, loaders: json }, null, 2)}\n`,
    );
  }
}

/** A refusal's message with paths, numbers and names blurred, to group reasons. */
function reasonOf(error: unknown): string {
  return String((error as Error)?.message ?? error)
    .split('\n')[0]!
    .replace(/\/[^\s)]+/g, '<path>')
    .replace(/\d+(\.\d+)?/g, 'N')
    .slice(0, 120);
}
