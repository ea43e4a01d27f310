import { type Static, Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/**
 * `GET /api/agents/{slug}/appearance/`: a character's widget configuration, not wrapped in an
 * envelope. Documented fields are checked when present; branding and anything else is kept.
 */
export const AppearanceSchema = Type.Object({
  name: Type.Optional(Type.String()),
  languages: Type.Optional(Type.Array(Type.Object({
    code: Type.String(),
    label: Type.Optional(Type.String()),
    native_label: Type.Optional(Type.String())
  }))),
  default_language: Type.Optional(Type.String()),
  /** Hard limit of a call in seconds; 0 means none. */
  max_call_seconds: Type.Optional(Type.Number()),
  forms: Type.Optional(Type.Array(Type.Object({
    id: Type.String(),
    title: Type.Optional(Type.String()),
    /** Null: the widget posts to Oshara's own form-responses endpoint. */
    submit_url: Type.Optional(Type.Union([Type.String(), Type.Null()]))
  })))
})

/** A character's public appearance: languages, call limit, forms and branding. Unknown fields are kept. */
export type OsharaAppearance = Static<typeof AppearanceSchema> & { [field: string]: unknown }

export const checkAppearance = TypeCompiler.Compile(AppearanceSchema)
