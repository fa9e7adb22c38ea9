/** Says where a key's value came from: a file and line, a variable, a profile. */
export type Locate = (keys: readonly (string | number)[]) => string;

/** Where each config `loadConfig` returned got its values, for `validateConfig`'s messages. */
export const SOURCES = new WeakMap<object, Locate>();
