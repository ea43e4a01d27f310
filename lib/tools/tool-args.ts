import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { ValueErrorType } from '@sinclair/typebox/errors'

/** A tool's `args` schema, compiled once at registration; checks without coercion or defaults. */
export function compileArgs (schema: TSchema): TypeCheck<TSchema> {
  return TypeCompiler.Compile(schema)
}

/**
 * Why `args` does not match, in one short sentence the LLM can act on: which argument, what was
 * expected. Never the value given. Undefined when it matches.
 */
export function argumentsProblem (check: TypeCheck<TSchema>, args: unknown): string | undefined {
  if (check.Check(args)) return undefined
  // A failed check has at least one error.
  const error = check.Errors(args).First() as NonNullable<ReturnType<ReturnType<TypeCheck<TSchema>['Errors']>['First']>>
  const name = error.path.slice(1).split('/').join('.')
  if (name === '') return `The arguments: ${lowerFirst(error.message)}.`
  if (error.type === ValueErrorType.ObjectRequiredProperty) return `Argument "${name}" is required.`
  if (error.type === ValueErrorType.ObjectAdditionalProperties) return `Argument "${name}" is not accepted.`
  return `Argument "${name}": ${lowerFirst(error.message)}.`
}

function lowerFirst (text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1)
}
