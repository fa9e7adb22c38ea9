/**
 * The README composition for gRPC, with default options, against a real grpc-js server in a
 * child process (test/fixtures/grpc-counter-server.ts) killed with SIGKILL and restarted on the
 * same port 10 times under concurrent load:
 *
 *   const grpc = resilientGrpc({ target, client: CounterClient, idempotentMethods: ['get'] });
 *   const api = grpcMethods<Counter>(new ServiceBuilder().layer(new RetryLayer()).service(grpc));
 *
 * The server logs every Increment id before replying (stdout to a pipe is synchronous, so a
 * kill -9 loses no line): the log is what ran. Counted: ids run more than once (0),
 * acknowledged ids missing from the log (0), promises pending after the run (0). Measured for
 * every restart: the reconnector's `connected` event to the first successful call after it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { ServiceBuilder } from '@towerline/core';
import { grpcMethods, resilientGrpc } from '@towerline/grpc';
import { RetryLayer } from '@towerline/retry';
import { freePort } from '@towerline/testing';
import { expect, it } from 'vitest';
import { counterDefinition } from '../fixtures/grpc-counter-definition.js';
import {
  between,
  ErrorTally,
  isAmbiguous,
  leftBehind,
  liveHandles,
  Settlements,
  sleep,
  summary,
  until,
  within,
} from './support.js';

const RESTARTS = 10;
const WORKERS = 8;
const script = fileURLToPath(new URL('../fixtures/grpc-counter-server.ts', import.meta.url));
const CounterClient = grpc.makeGenericClientConstructor(counterDefinition, 'Counter');
type Counter = { increment: [Buffer, Buffer]; get: [Buffer, Buffer] };

/** One server process: spawned as a warm spare, told to listen, killed with SIGKILL. */
class CounterProcess {
  readonly child: ChildProcess;
  #out = '';
  #err = '';
  #waiters: Array<{ line: string; resolve: () => void }> = [];
  /** Every non-log line printed so far (`waiting`, `listening`), for waits that start late. */
  readonly #printed: string[] = [];
  readonly #closed: Promise<unknown>;

  constructor(port: number, executed: string[]) {
    this.child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', script, String(port), '--wait'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.#closed = once(this.child, 'close');
    this.child.stdin!.on('error', () => {});
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      this.#out += chunk;
      for (let i = this.#out.indexOf('\n'); i !== -1; i = this.#out.indexOf('\n')) {
        const line = this.#out.slice(0, i);
        this.#out = this.#out.slice(i + 1);
        if (line.startsWith('inc ')) executed.push(line.slice(4));
        else this.#printed.push(line);
        for (const w of this.#waiters.filter((w) => line.startsWith(w.line))) w.resolve();
        this.#waiters = this.#waiters.filter((w) => !line.startsWith(w.line));
      }
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      this.#err = (this.#err + chunk).slice(-2_000);
    });
  }

  /** Resolves on the first stdout line starting with `line`; bounded. */
  #line(line: string, timeoutMs: number): Promise<void> {
    if (this.#printed.some((l) => l.startsWith(line))) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        reject(new Error(`server never printed "${line}" within ${timeoutMs} ms: ${this.#err}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#waiters.push({ line, resolve: done });
    });
  }

  /** Resolves once the process has loaded and waits for `listen`. */
  loaded(): Promise<void> {
    return this.#line('waiting', 30_000);
  }

  /** Binds the port; resolves once it listens. */
  listen(): Promise<void> {
    const listening = this.#line('listening', 10_000);
    this.child.stdin!.write('listen\n');
    return listening;
  }

  /** SIGKILL; resolves once the process is gone and every line it wrote has been read. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
    }
    await this.#closed;
  }
}

it(`README composition (default options) through ${RESTARTS} kill -9 restarts of a grpc-js server: nothing run twice, none lost, none pending`, async () => {
  const handlesBefore = liveHandles();
  const port = await freePort();
  const executed: string[] = [];
  const processes: CounterProcess[] = [];
  const spawnSpare = () => {
    const p = new CounterProcess(port, executed);
    processes.push(p);
    return p;
  };

  let current = spawnSpare();
  await current.loaded();
  await current.listen();
  let spare = spawnSpare();

  const channel = resilientGrpc({
    target: `127.0.0.1:${port}`,
    client: CounterClient,
    idempotentMethods: ['get'],
  });
  const retry = new RetryLayer();
  const stack = new ServiceBuilder().layer(retry).service(channel);
  const api = grpcMethods<Counter>(stack);
  const r = channel.reconnector;

  const calls = new Settlements();
  const acknowledged = new Set<string>();
  let ambiguous = 0;
  let getsOk = 0;
  const unexpected = new ErrorTally();
  let retries = 0;
  retry.events.on('retry', () => retries++);

  // For every reconnect: when `connected` fired, when the first call after it succeeded, and
  // when the connection turned healthy (minUptime, 1 s by default, after `connected`).
  const restarts: Array<{ restartedAt: number; connectedAt?: number; firstSuccessAt?: number }> =
    [];
  let awaiting: (typeof restarts)[number] | undefined;
  const healthyAt = new Map<number, number>();
  const connectedGeneration = new Map<(typeof restarts)[number], number>();
  const onConnected = r.events.subscribe('connected', ({ generation }) => {
    const entry = restarts.at(-1);
    if (generation > 1 && entry !== undefined && entry.connectedAt === undefined) {
      entry.connectedAt = performance.now();
      connectedGeneration.set(entry, generation);
      awaiting = entry;
    }
  });
  const onHealthy = r.events.subscribe('healthy', ({ generation }) => {
    healthyAt.set(generation, performance.now());
  });
  const succeeded = () => {
    if (awaiting !== undefined) {
      awaiting.firstSuccessAt = performance.now();
      awaiting = undefined;
    }
  };

  let stopping = false;
  const worker = async (id: number) => {
    for (let n = 0; !stopping && n < 100_000; n++) {
      const reqId = `${id}-${n}`;
      const [inc, get] = await Promise.allSettled([
        calls.track(api.increment(Buffer.from(reqId))).then((reply) => {
          succeeded();
          return reply;
        }),
        calls.track(api.get(Buffer.alloc(0))).then((reply) => {
          succeeded();
          return reply;
        }),
      ]);
      if (inc.status === 'fulfilled') {
        if (inc.value.toString() === reqId) acknowledged.add(reqId);
        else unexpected.add(new Error('increment replied with another id'));
      } else if (isAmbiguous(inc.reason)) ambiguous++;
      else unexpected.add(inc.reason);
      if (get.status === 'fulfilled') {
        if (Number.isInteger(Number(get.value.toString()))) getsOk++;
        else unexpected.add(new Error('get replied with a non-number'));
      } else unexpected.add(get.reason); // idempotent: resent, never left ambiguous
    }
  };

  let kills = 0;
  const started = performance.now();
  try {
    await api.get(Buffer.alloc(0));
    const workers = Array.from({ length: WORKERS }, (_, i) => worker(i));
    for (let cycle = 0; cycle < RESTARTS; cycle++) {
      await until(() => r.healthy, 15_000, `healthy before kill ${cycle + 1}`);
      await spare.loaded();
      await sleep(between(0, 250));
      await current.kill();
      kills++;
      await sleep(between(0, 60));
      current = spare;
      await current.listen();
      const restart = { restartedAt: performance.now() } as (typeof restarts)[number];
      restarts.push(restart);
      // The next spare loads (tsx, grpc-js: a second of CPU) only once this restart's first
      // success is measured, so that the measurement does not include its start-up.
      await until(() => restart.firstSuccessAt !== undefined, 15_000, `success ${cycle + 1}`);
      spare = spawnSpare();
    }
    await until(() => r.healthy, 15_000, 'healthy after the last restart');
    await sleep(100);
    stopping = true;
    await within(Promise.allSettled(workers), 20_000);
    const pending = await calls.drained(5_000);
    const runMs = performance.now() - started;
    // The log is complete once the process is gone and its stdout drained.
    await current.kill();

    const runs = new Map<string, number>();
    for (const id of executed) runs.set(id, (runs.get(id) ?? 0) + 1);
    const duplicated = [...runs.values()].filter((n) => n > 1).length;
    const missing = [...acknowledged].filter((id) => !runs.has(id)).length;
    const stats = channel.stats;
    const measured = restarts.filter(
      (x): x is Required<typeof x> => x.connectedAt !== undefined && x.firstSuccessAt !== undefined,
    );
    const firstSuccess = summary(measured.map((x) => x.firstSuccessAt - x.connectedAt));
    const toConnected = summary(measured.map((x) => x.connectedAt - x.restartedAt));
    console.log(
      `composition grpc: ${kills} kills, ${r.stats.reconnects} reconnects, ${(runMs / 1000).toFixed(1)} s; ` +
        `Increment ${acknowledged.size} acked (${missing} missing from the log), ${ambiguous} may have executed, ` +
        `${executed.length} logged (${duplicated} ids run more than once); Get ${getsOk} ok; ` +
        `retries ${retries}, resent on reconnect ${stats.retriedOnReconnect}, requeued never-sent ${stats.requeued}; ` +
        `other errors: ${unexpected.toString()}; pending ${pending}; ` +
        `connected -> first success p50 ${firstSuccess.p50} ms, max ${firstSuccess.max} ms over ${measured.length} restarts ` +
        `(restart -> connected p50 ${toConnected.p50} ms, max ${toConnected.max} ms: the reconnect backoff)`,
    );

    expect(kills).toBe(RESTARTS);
    expect(r.stats.reconnects).toBeGreaterThanOrEqual(RESTARTS);
    expect(acknowledged.size).toBeGreaterThan(RESTARTS * WORKERS);
    expect(duplicated).toBe(0);
    expect(missing).toBe(0);
    expect(pending).toBe(0);
    // Repeats happened, so "none run twice" was tested: Gets cut off are resent, calls that
    // never reached a server are requeued.
    expect(retries + stats.retriedOnReconnect + stats.requeued).toBeGreaterThan(0);
    // No other error is acceptable: an outage lasts the reconnect backoff (under a second
    // here), far below the queue timeout (30 s) and the call deadline (10 s); an Increment cut
    // off in flight is the only call that may fail, and it must say mayHaveExecuted.
    expect(unexpected.total, unexpected.toString()).toBe(0);
    // Every restart was followed by a reconnect and a success on it, and that first success
    // came before the connection's minUptime timer (1 s after `connected`) fired: nothing sat
    // out a backoff after the connection was back.
    expect(measured).toHaveLength(RESTARTS);
    for (const x of measured) {
      const healthy = healthyAt.get(connectedGeneration.get(x)!);
      expect(healthy).toBeDefined();
      expect(x.firstSuccessAt).toBeLessThan(healthy!);
    }
  } finally {
    stopping = true;
    onConnected.dispose();
    onHealthy.dispose();
    await stack.close?.();
    for (const p of processes) {
      p.child.stdin!.end();
      await p.kill();
    }
  }
  expect(await leftBehind(handlesBefore)).toEqual({});
}, 120_000);
