import type { EmulatorAppearance, EmulatorCharacter } from './emulator-types.js'

/** Names of the languages the emulator's characters usually offer; other codes are shown as given. */
const LANGUAGE_NAMES: Record<string, [label: string, native: string]> = {
  en: ['English', 'English'],
  fr: ['French', 'Français'],
  de: ['German', 'Deutsch'],
  es: ['Spanish', 'Español']
}

/** A character's appearance with the documented fields; branding is Oshara's documented defaults. */
export function appearanceOf (character: EmulatorCharacter): EmulatorAppearance {
  const codes = character.languages ?? [character.language ?? 'en']
  return {
    name: character.name ?? character.slug,
    subtitle: '',
    logo_url: '',
    start_button_text: 'Start Call',
    theme: { primary_color: '#6366F1', accent_color: '#22D3EE', background_color: '#FFFFFF', text_color: '#0F172A' },
    dimensions: { fab_size: 64, panel_width: 380, panel_height: 620, border_radius: 24 },
    labels: { idle: 'Idle', connecting: 'Connecting…', listening: 'Listening', call_ended: 'Call ended' },
    languages: codes.map((code) => {
      const [label, native] = LANGUAGE_NAMES[code.split('-')[0] as string] ?? [code, code]
      return { code, label, native_label: native }
    }),
    default_language: codes[0] as string,
    max_call_seconds: character.max_call_seconds ?? 0,
    terms_url: '',
    show_audio_settings: true,
    forms: character.forms ?? []
  }
}
