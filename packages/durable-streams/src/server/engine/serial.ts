/**
 * Per-key serial execution: tasks of one key run one at a time, in order; keys run in
 * parallel. `refresh` is shared by every caller that arrives while one waits (a refresh asked
 * for after a write still starts after it). An idle key holds nothing.
 */
interface Lane {
  tail: Promise<unknown>;
  /** A refresh queued and not started yet: later callers join it. */
  queued: Promise<void> | undefined;
  n: number;
}

export class KeyedSerial {
  readonly #lanes = new Map<string, Lane>();

  /** Runs `task` after every task queued for `key` so far. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    let lane = this.#lanes.get(key);
    if (!lane) {
      lane = { tail: Promise.resolve(), queued: undefined, n: 0 };
      this.#lanes.set(key, lane);
    }
    const l = lane;
    l.n++;
    const out = l.tail.then(task, task);
    l.tail = out.then(
      () => this.#done(key, l),
      () => this.#done(key, l),
    );
    return out;
  }

  /** Like `run`, but joins a refresh of `key` that is queued and has not started yet. */
  refresh(key: string, task: () => Promise<void>): Promise<void> {
    const queued = this.#lanes.get(key)?.queued;
    if (queued) return queued;
    let started = false;
    const p = this.run(key, () => {
      started = true;
      const l = this.#lanes.get(key);
      if (l && l.queued === p) l.queued = undefined;
      return task();
    });
    const l = this.#lanes.get(key)!;
    if (!started) l.queued = p;
    return p;
  }

  #done(key: string, lane: Lane): void {
    if (--lane.n === 0 && this.#lanes.get(key) === lane) this.#lanes.delete(key);
  }

  /** Keys with work queued or running. */
  get size(): number {
    return this.#lanes.size;
  }
}
