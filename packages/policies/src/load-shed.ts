import {
  type CallContext,
  contextProblem,
  expectOptions,
  invalidArgument,
  type Service,
  type ServiceLayer,
  TowerlineError,
  TypedEmitter,
} from '@towerline/core';
import { expectName } from './check.js';
import type { Saturable } from './concurrency.js';

export type LoadShedEvents = { shed: { inflight?: number } };

export interface LoadShedOptions {
  /** Whether the service below is saturated now; default its own `saturated` flag (a concurrency-limited service has one). */
  saturated?: () => boolean;
  name?: string;
}

/**
 * Refuses a call at once with `ERR_OVERLOADED` while the service below is saturated (tower's
 * `LoadShed`), instead of letting it wait: put it right above a `ConcurrencyLimitLayer` (whose
 * queue then only serves callers that did not go through the shedder), or give it any
 * `saturated` test of your own (event-loop lag, a memory budget).
 *
 * @example
 * ```ts
 * const svc = new ServiceBuilder()
 *   .layer(new LoadShedLayer())
 *   .layer(new ConcurrencyLimitLayer({ limit: 64 }))
 *   .service(handler);
 * ```
 */
export class LoadShedLayer implements ServiceLayer {
  readonly events = new TypedEmitter<LoadShedEvents>({ channel: 'towerline:load-shed' });
  readonly #saturated: (() => boolean) | undefined;

  constructor(options: LoadShedOptions = {}) {
    expectOptions(options, true);
    if (options.saturated !== undefined && typeof options.saturated !== 'function') {
      invalidArgument('saturated', 'expected a function');
    }
    this.#saturated = options.saturated;
    expectName(options.name);
    this.events.source = options.name ?? 'load-shed';
  }

  wrap<Req, Res>(inner: Service<Req, Res>): Service<Req, Res> {
    let saturated = this.#saturated;
    if (saturated === undefined) {
      if (typeof (inner as Partial<Saturable>).saturated !== 'boolean') {
        invalidArgument('inner', 'expected a service with a saturated flag, or a saturated option');
      }
      saturated = () => (inner as unknown as Saturable).saturated;
    }
    const test = saturated;
    return {
      call: (req: Req, ctx?: CallContext) => {
        const problem = contextProblem(ctx);
        if (problem !== undefined) return Promise.reject(problem);
        if (test()) {
          this.events.emit('shed', {});
          return Promise.reject(
            new TowerlineError('ERR_OVERLOADED', 'the service is saturated; the call was shed', {
              mayHaveExecuted: false,
            }),
          );
        }
        try {
          return inner.call(req, ctx);
        } catch (error) {
          return Promise.reject(error);
        }
      },
      close: () => inner.close?.() ?? Promise.resolve(),
    };
  }
}
