import {
  type AttemptBudget,
  abortedBeforeStart,
  type CallContext,
  type Clock,
  describeValue,
  expectClock,
  expectOptions,
  invalidArgument,
  RequestContext,
  type Service,
  type ServiceLayer,
  systemClock,
  type TimerHandle,
  TypedEmitter,
} from '@towerline/core';
import { expectName, expectNumber } from './check.js';

export type HedgeEvents = {
  /** A second attempt started after `delayMs`. */
  hedged: { delayMs: number };
  /** A hedge was due but the budget (or the attempt cap) refused it. */
  refused: { delayMs: number };
};

export interface HedgeOptions {
  /** Start the hedge after this many ms. */
  delayMs?: number;
  /**
   * Or after this percentile of recent latencies (0.95: the slowest 5 % get a hedge), once
   * `minSamples` calls were seen (before that, `delayMs`, or no hedge).
   */
  percentile?: number;
  /** Default 20. */
  minSamples?: number;
  /**
   * Pays for each hedge. Default: hedges at most 10 % of calls (a deposit of 0.1 per call,
   * up to 10 saved).
   */
  budget?: AttemptBudget;
  clock?: Clock;
  name?: string;
}

/** The default budget: a hedge for every ten calls, a few saved up. */
class RatioBudget implements AttemptBudget {
  #balance = 0;
  deposit(): void {
    this.#balance = Math.min(10, this.#balance + 0.1);
  }
  withdraw(): boolean {
    if (this.#balance < 1) return false;
    this.#balance -= 1;
    return true;
  }
}

const SAMPLES = 512;

/**
 * Sends a second copy of a slow call and takes whichever answers first (tower's `Hedge`, "The
 * Tail at Scale"): for idempotent requests only (`ctx.idempotent === true`, set by the caller
 * or a connector's classifier), others pass straight through. The loser is aborted (its own
 * signal fires); the hedge counts as an attempt on the request's context (no request is sent
 * more than its `maxAttempts`), and a budget bounds the extra load.
 *
 * @example
 * ```ts
 * const svc = new HedgeLayer({ percentile: 0.95, delayMs: 50 }).wrap(readReplica);
 * await svc.call(query, { idempotent: true });
 * ```
 */
export class HedgeLayer implements ServiceLayer {
  readonly events = new TypedEmitter<HedgeEvents>({ channel: 'towerline:hedge' });
  readonly #delayMs: number | undefined;
  readonly #percentile: number | undefined;
  readonly #minSamples: number;
  readonly #budget: AttemptBudget & { deposit?(): void };
  readonly #clock: Clock;
  readonly #latencies = new Float64Array(SAMPLES);
  #seen = 0;
  #cached: number | undefined;

  constructor(options: HedgeOptions = {}) {
    expectOptions(options, true);
    const { delayMs, percentile } = options;
    if (delayMs === undefined && percentile === undefined) {
      invalidArgument('delayMs', 'expected delayMs or percentile');
    }
    if (delayMs !== undefined)
      expectNumber('delayMs', delayMs, (d) => d >= 0 && d < Number.POSITIVE_INFINITY, 'ms >= 0');
    if (
      percentile !== undefined &&
      !(typeof percentile === 'number' && percentile > 0 && percentile < 1)
    ) {
      invalidArgument('percentile', `expected in (0, 1), got ${describeValue(percentile)}`);
    }
    this.#delayMs = delayMs;
    this.#percentile = percentile;
    const { minSamples = 20, budget } = options;
    expectNumber('minSamples', minSamples, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');
    this.#minSamples = minSamples;
    if (
      budget !== undefined &&
      (typeof budget !== 'object' ||
        budget === null ||
        typeof budget.withdraw !== 'function' ||
        ((budget as { deposit?: unknown }).deposit !== undefined &&
          typeof (budget as { deposit?: unknown }).deposit !== 'function'))
    ) {
      invalidArgument(
        'budget',
        `expected an AttemptBudget (a withdraw function), got ${describeValue(budget)}`,
      );
    }
    this.#budget = budget ?? new RatioBudget();
    expectName(options.name);
    expectClock(options.clock);
    this.#clock = options.clock ?? systemClock;
    this.events.source = options.name ?? 'hedge';
  }

  /** The delay a hedge would wait now, or undefined (no hedge yet). */
  get delayMs(): number | undefined {
    if (this.#percentile !== undefined && this.#seen >= this.#minSamples) {
      if (this.#cached === undefined) {
        const n = Math.min(this.#seen, SAMPLES);
        const sorted = Array.from(this.#latencies.subarray(0, n)).sort((a, b) => a - b);
        this.#cached = sorted[Math.min(n - 1, Math.floor(n * this.#percentile))]!;
      }
      return this.#cached;
    }
    return this.#delayMs;
  }

  #record(ms: number): void {
    this.#latencies[this.#seen % SAMPLES] = ms;
    this.#seen++;
    if (this.#seen % 32 === 0) this.#cached = undefined;
  }

  wrap<Req, Res>(inner: Service<Req, Res>): Service<Req, Res> {
    return {
      call: (req: Req, ctx?: CallContext) => {
        if (ctx === undefined) return inner.call(req, ctx);
        const aborted = abortedBeforeStart(ctx);
        if (aborted !== undefined) return aborted;
        if (ctx.idempotent !== true) return inner.call(req, ctx);
        return this.#hedged(inner, req, RequestContext.from(ctx));
      },
      close: () => inner.close?.() ?? Promise.resolve(),
    };
  }

  #hedged<Req, Res>(inner: Service<Req, Res>, req: Req, c: RequestContext): Promise<Res> {
    this.#budget.deposit?.();
    if (c.attempts === 0) c.attempts = 1;
    const clock = this.#clock;
    const t0 = clock.now();
    const delay = this.delayMs;
    return new Promise<Res>((resolve, reject) => {
      const controllers: AbortController[] = [];
      let settled = false;
      let running = 0;
      let lastError: unknown;
      let timer: TimerHandle | undefined;
      const parent = c.signal;
      const onParent = () => {
        for (const ac of controllers) ac.abort(parent!.reason);
      };
      parent?.addEventListener('abort', onParent, { once: true });
      const finish = () => {
        settled = true;
        if (timer !== undefined) clock.clearTimeout(timer);
        parent?.removeEventListener('abort', onParent);
      };
      const launch = (attempt: number) => {
        const ac = new AbortController();
        controllers.push(ac);
        running++;
        const own = new RequestContext({
          signal: ac.signal,
          deadline: c.deadline,
          idempotent: true,
        });
        own.attempts = attempt;
        own.maxAttempts = c.maxAttempts;
        own.budget = c.budget;
        let p: Promise<Res>;
        try {
          p = inner.call(req, own);
        } catch (error) {
          p = Promise.reject(error);
        }
        p.then(
          (value) => {
            running--;
            if (settled) return;
            finish();
            this.#record(clock.now() - t0);
            for (const other of controllers) if (other !== ac) other.abort(lostRace());
            resolve(value);
          },
          (error: unknown) => {
            running--;
            lastError = error;
            if (settled || running > 0) return;
            finish();
            reject(lastError);
          },
        );
      };
      launch(c.attempts);
      if (delay === undefined) return;
      timer = clock.setTimeout(() => {
        timer = undefined;
        if (settled) return;
        if (running === 0) {
          finish();
          reject(lastError);
          return;
        }
        if (!(c.attempts < c.maxAttempts) || !this.#budget.withdraw()) {
          this.events.emit('refused', { delayMs: delay });
          return;
        }
        c.attempts++;
        this.events.emit('hedged', { delayMs: delay });
        launch(c.attempts);
      }, delay);
      clock.unref?.(timer);
    });
  }
}

function lostRace(): Error {
  const error = new Error('another attempt answered first');
  error.name = 'AbortError';
  return error;
}
