/**
 * A concurrency limit whose adaptive algorithm (or drop classifier) misbehaves — throws from
 * `sample`, answers NaN for its limit, throws from its `limit` getter — must never lose a slot
 * or change a call's outcome: every call gets the inner service's answer and no queued call
 * waits forever. It used to leak the slot on a throwing `sample`, so every queued call hung.
 */
import { isTowerlineError, type Service } from '@towerline/core';
import {
  AimdLimit,
  ConcurrencyLimitLayer,
  Gradient2Limit,
  type LimitAlgorithm,
  VegasLimit,
} from '@towerline/policies';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** A service answering after a macrotask, failing the requests that start with `fail`. */
const service: Service<string, string> = {
  call: (req) =>
    new Promise((resolve, reject) =>
      setImmediate(() => (req.startsWith('fail') ? reject(new Error(req)) : resolve(`ok:${req}`))),
    ),
};

const faulty: Record<string, () => LimitAlgorithm> = {
  'sample throws': () => ({
    limit: 1,
    sample() {
      throw new Error('algorithm bug');
    },
  }),
  'limit is NaN': () => ({ limit: Number.NaN, sample() {} }),
  'limit getter throws': () => ({
    get limit(): number {
      throw new Error('getter bug');
    },
    sample() {},
  }),
  'Vegas alpha throws': () =>
    new VegasLimit({
      initial: 1,
      alpha: () => {
        throw new Error('alpha bug');
      },
    }),
  'Gradient2 queueSize throws': () =>
    new Gradient2Limit({
      initial: 1,
      queueSize: () => {
        throw new Error('queue bug');
      },
    }),
};

describe('a misbehaving adaptive limit', () => {
  it.each(Object.keys(faulty))(
    '%s: every call gets its own outcome, none hangs, the slots come back',
    async (name) => {
      const layer = new ConcurrencyLimitLayer({
        limit: faulty[name]!(),
        queue: 100,
        maxWaitMs: 5_000,
        isDrop: () => {
          throw new Error('classifier bug');
        },
      });
      const svc = layer.wrap(service);
      const reqs = Array.from({ length: 20 }, (_, i) => (i % 4 === 3 ? `fail${i}` : `r${i}`));
      const outcomes = await Promise.all(
        reqs.map((r) =>
          svc.call(r).then(
            (v) => v,
            (e: Error) => `rejected:${e.message}`,
          ),
        ),
      );
      expect(outcomes).toEqual(
        reqs.map((r) => (r.startsWith('fail') ? `rejected:${r}` : `ok:${r}`)),
      );
      expect(layer.inflight).toBe(0);
      expect(layer.queued).toBe(0);
    },
  );
});

describe('adaptive limit options', () => {
  const makers: Array<[string, (v: unknown) => unknown]> = [
    ['initial', (v) => new AimdLimit({ initial: v as never })],
    ['backoffRatio', (v) => new AimdLimit({ backoffRatio: v as never })],
    ['timeoutMs', (v) => new AimdLimit({ timeoutMs: v as never })],
    ['max', (v) => new Gradient2Limit({ max: v as never })],
    ['rttTolerance', (v) => new Gradient2Limit({ rttTolerance: v as never })],
    ['smoothing', (v) => new Gradient2Limit({ smoothing: v as never })],
    ['longWindow', (v) => new Gradient2Limit({ longWindow: v as never })],
    ['queueSize', (v) => new Gradient2Limit({ queueSize: v as never })],
    ['min', (v) => new VegasLimit({ min: v as never })],
    ['alpha', (v) => new VegasLimit({ alpha: v as never })],
    ['beta', (v) => new VegasLimit({ beta: v as never })],
    ['probeMultiplier', (v) => new VegasLimit({ probeMultiplier: v as never })],
    ['isDrop', (v) => new ConcurrencyLimitLayer({ limit: 2, isDrop: v as never })],
    ['maxWaitMs', (v) => new ConcurrencyLimitLayer({ limit: 2, maxWaitMs: v as never })],
    ['clock', (v) => new ConcurrencyLimitLayer({ limit: 2, clock: v as never })],
  ];
  /** Values no option takes: strings (numeric ones too), booleans, objects, NaN. */
  const wrong = fc.oneof(
    fc.string().map((s) => `secret-${s}`),
    fc.integer({ min: 1, max: 50 }).map(String),
    fc.boolean(),
    fc.constant(Number.NaN),
    fc.constant({}),
    fc.constant(null),
  );
  it('refuse what is not theirs by name, never a TypeError, never quoting it', () => {
    fc.assert(
      fc.property(fc.constantFrom(...makers), wrong, ([field, make], value) => {
        let thrown: unknown;
        try {
          make(value);
        } catch (error) {
          thrown = error;
        }
        expect(isTowerlineError(thrown), `${field}: threw ${String(thrown)}`).toBe(true);
        const e = thrown as { code: string; parameter: string; message: string };
        expect(e.code).toBe('ERR_INVALID_ARGUMENT');
        expect([field, 'limit']).toContain(e.parameter);
        if (typeof value === 'string' && value.startsWith('secret-'))
          expect(e.message).not.toContain(value);
      }),
      { numRuns: 300 },
    );
  });
});
