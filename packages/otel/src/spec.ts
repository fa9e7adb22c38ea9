import type { Attributes } from '@opentelemetry/api';

/** One OpenTelemetry instrument a source records into. */
export interface InstrumentSpec {
  kind: 'counter' | 'histogram' | 'gauge';
  /** The metric name, `towerline.<component>.<what>` or a semantic-convention name. */
  name: string;
  /** UCUM unit per the OpenTelemetry conventions: `s`, `By`, `1`, or an annotation `{attempt}`. */
  unit: string;
  description: string;
}

/** What an event handler of a {@link SourceSpec} records with. */
export interface Recorder {
  /** Adds `value` (default 1) to the counter `key`. */
  add(key: string, value?: number, attributes?: Attributes): void;
  /** Records `value` in the histogram `key`. */
  record(key: string, value: number, attributes?: Attributes): void;
  /** The attribute value of an error: its code or name (a bounded set), never its message. */
  errorType(error: unknown): string;
}

/**
 * Everything `instrument()` knows about one kind of event source, declaratively: adding a
 * source (a new layer of `@towerline/policies`, say) is one more entry of this shape.
 */
export interface SourceSpec {
  /**
   * The source's diagnostics channel prefix without `towerline:` (its emitter's `channel` is
   * `towerline:<component>`): how `instrument()` recognises it.
   */
  component: string;
  /** The instruments, by the key the handlers use. */
  instruments: Record<string, InstrumentSpec>;
  /** Per event, what it records. Attribute values must come from small, fixed sets. */
  events: Record<string, (payload: any, recorder: Recorder) => void>;
  /**
   * A state gauge: `1` for the state the target is in, `0` for the others. `initial` reads the
   * target's state (undefined: this target has none, no gauge); `stateChange` events move it.
   */
  state?: {
    instrument: string;
    states: readonly string[];
    initial: (target: object) => string | undefined;
  };
  /**
   * The `TracingChannel` the source's layer publishes each call on (`towerline:<layer>:call`)
   * and the histogram key its duration, in seconds, is recorded in.
   */
  call?: { channel: string; instrument: string };
}
