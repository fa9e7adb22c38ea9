import { contextProblem, isAbortSignal } from './context.js';

/**
 * `promise`, or the signal's reason as soon as it fires, whichever comes first; a later
 * rejection of `promise` is handled (never an unhandled rejection) and its value dropped.
 *
 * @example
 * ```ts
 * const reply = await untilAborted(slowCall(), AbortSignal.timeout(1_000));
 * ```
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (!isAbortSignal(signal)) {
    promise.catch(() => {});
    return Promise.reject(contextProblem({ signal }));
  }
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
