/**
 * The deadline list behind the live reads: entries fire in deadline order at their time, a
 * removed entry never fires, and however many entries there are, one clock timer at most.
 */
import { VirtualClock } from '@towerline/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Deadlines } from '../src/server/transport/deadlines.js';

describe('Deadlines', () => {
  it('fires each entry once at its deadline, never a removed one, with one timer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({ add: fc.integer({ min: 0, max: 50 }) }),
            fc.record({ remove: fc.nat() }),
            fc.record({ advance: fc.integer({ min: 0, max: 30 }) }),
          ),
          { maxLength: 60 },
        ),
        async (ops) => {
          const clock = new VirtualClock();
          const list = new Deadlines(clock);
          const fired: number[] = [];
          const model = new Map<number, number>(); // id → deadline, not yet fired or removed
          const handles: Array<ReturnType<Deadlines['add']>> = [];
          for (const op of ops) {
            if ('add' in op) {
              const id = handles.length;
              model.set(id, clock.now() + op.add);
              handles.push(list.add(op.add, () => fired.push(id)));
            } else if ('remove' in op && handles.length > 0) {
              const id = op.remove % handles.length;
              list.remove(handles[id]!);
              model.delete(id);
            } else if ('advance' in op) {
              const to = clock.now() + op.advance;
              const due = [...model].filter(([, at]) => at <= to).map(([id]) => id);
              fired.length = 0;
              await clock.advance(op.advance);
              expect([...fired].sort((a, b) => a - b)).toEqual(due.sort((a, b) => a - b));
              for (const id of due) model.delete(id);
            }
            expect(clock.pending).toBeLessThanOrEqual(1);
            expect(list.size).toBe(model.size);
          }
          list.clear();
          expect(clock.pending).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});
