import { booleanOption, functionOption, integerOption, objectOption, refuseUnsetFunctions } from '../validate.js'

/**
 * How an option is declared and checked: each feature declares its own group of options with
 * these builders (`satisfies OptionGroup<TheOptionsType>`, so an option type without an entry, or an
 * entry without an option, fails the typecheck); the plugin composes the groups. A leaf module:
 * it imports no feature.
 */

/** One option: its check, which also applies the default. */
export interface OptionSpec<T = unknown> {
  /**
   * `value` is undefined when the option is left out. Returns the normalised value; throws
   * `FST_OSHARA_INVALID_OPTIONS` naming `path` (e.g. `limits.holdMs`) and the fix.
   */
  readonly check: (value: unknown, path: string) => T
  /** A function option: given as `undefined` or `null` it is refused (a hook read before it exists). */
  readonly callback?: true
}

/** The option names of `T`, without index signatures such as `x-${string}`. */
export type OptionName<T> = { [K in keyof T]-?: string extends K ? never : K extends `x-${string}` ? never : K }[keyof T]

/** Exactly one entry per option of `T`: a missing entry fails `satisfies`, an extra one the excess-property check. */
export type OptionGroup<T> = { readonly [K in OptionName<T>]: OptionSpec }

/** What a group's checks return. */
export type Normalized<G> = { readonly [K in keyof G]: G[K] extends OptionSpec<infer T> ? T : never }

export function optionNames<G extends object> (group: G): Array<keyof G & string> {
  return Object.keys(group) as Array<keyof G & string>
}

/** Checks an object's options against `group` (unknown keys are the caller's concern): unset callbacks first, then each check. */
export function checkGroup<G extends object> (group: G, object: Record<string, unknown>, prefix: string): Normalized<G> {
  const entries = Object.entries(group) as Array<[string, OptionSpec]>
  refuseUnsetFunctions(prefix, object, entries.filter(([, spec]) => spec.callback === true).map(([name]) => name))
  const normalized: Record<string, unknown> = {}
  for (const [name, spec] of entries) {
    const value = spec.check(object[name], prefix + name)
    // Left-out options without a default stay absent (they are spread into Fastify's route options).
    if (value !== undefined) normalized[name] = value
  }
  return normalized as Normalized<G>
}

/** A nested option object (`limits`, `retry`, ...): a plain object with only `group`'s keys, checked. */
export function normalizeGroup<G extends object> (group: G, value: unknown, path: string, prefix = `${path}.`): Normalized<G> {
  return checkGroup(group, objectOption(path, value, optionNames(group)), prefix)
}

// Builders for the common shapes.

export function integer (fallback: number, min: number, max?: number): OptionSpec<number> {
  return { check: (value, path) => value === undefined ? fallback : integerOption(path, value, { min, max }, fallback) }
}

/** An integer without a default: left out, it stays undefined. */
export function optionalInteger (min: number): OptionSpec<number | undefined> {
  return optional((value, path) => integerOption(path, value, { min }))
}

/**
 * The longest delay Node.js timers take (2^31 - 1 ms): a longer one fires at once, with a
 * TimeoutOverflowWarning, so a timeout that long would end every call at once.
 */
export const MAX_TIMER_MS = 2_147_483_647

/**
 * A duration in milliseconds: at most `MAX_TIMER_MS`, or a smaller `max`. Most end up in a timer;
 * the others (a slot's hold, the breaker's cooldown, `tracking.maxTrackMs`) have no use that long,
 * and one rule gives one message. `quota.window` is not one of them: no timer waits for a window.
 */
export function duration (fallback: number, min: number, max = MAX_TIMER_MS): OptionSpec<number> {
  return { check: (value, path) => value === undefined ? fallback : durationOption(path, value, min, max, fallback) }
}

/** A duration whose default is not one number: `defaultIs` says what leaving it out gives. */
export function optionalDuration (min: number, defaultIs: string): OptionSpec<number | undefined> {
  return optional((value, path) => durationOption(path, value, min, MAX_TIMER_MS, defaultIs))
}

function durationOption (path: string, value: unknown, min: number, max: number, defaultValue: number | string): number {
  const maxReason = max === MAX_TIMER_MS ? 'about 24.8 days, the longest a Node.js timer waits' : undefined
  return integerOption(path, value, { min, max, unit: ' ms', maxReason }, defaultValue)
}

export function flag (fallback: boolean): OptionSpec<boolean> {
  return { check: (value, path) => booleanOption(path, value, fallback) }
}

export function userFunction<F> (signature: string): OptionSpec<F | undefined> {
  return { callback: true, check: (value, path) => functionOption<F>(path, value, signature) }
}

export function optional<T> (check: (value: unknown, path: string) => T): OptionSpec<T | undefined> {
  return { check: (value, path) => value === undefined ? undefined : check(value, path) }
}
