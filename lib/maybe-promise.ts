/** A value, or a promise of it: what the app's callbacks may return. */
export type MaybePromise<T> = T | Promise<T>
