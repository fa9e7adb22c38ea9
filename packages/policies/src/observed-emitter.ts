import { type EventMap, TypedEmitter, type TypedEmitterOptions } from '@towerline/core';

/**
 * A typed emitter that tells its owner when listeners come and go, so that a layer can skip,
 * on its happy path, the work only a listener needs (timing a call for an `outcome` event).
 */
export class ObservedEmitter<Events extends EventMap> extends TypedEmitter<Events> {
  readonly #changed: () => void;

  constructor(options: TypedEmitterOptions, changed: () => void) {
    super(options);
    this.#changed = changed;
  }

  override on<K extends keyof Events & string>(
    event: K,
    listener: (payload: Events[K]) => void,
  ): this {
    super.on(event, listener);
    this.#changed();
    return this;
  }

  override once<K extends keyof Events & string>(
    event: K,
    listener: (payload: Events[K]) => void,
  ): this {
    super.once(event, listener);
    this.#changed();
    return this;
  }

  override off<K extends keyof Events & string>(
    event: K,
    listener?: (payload: Events[K]) => void,
  ): this {
    super.off(event, listener);
    this.#changed();
    return this;
  }

  override removeAllListeners(event?: keyof Events & string): this {
    super.removeAllListeners(event);
    this.#changed();
    return this;
  }
}
