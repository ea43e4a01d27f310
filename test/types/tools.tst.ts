import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { expect, test } from 'tstyche'
import {
  OsharaToolRefusedError,
  type OsharaErrorCode,
  type OsharaToolContext,
  type OsharaToolMessage,
  type OsharaToolOutcome,
  type OsharaToolsOptions,
  type OsharaVoiceOptions
} from 'fastify-oshara-voice'
import type { SessionState, SessionStore } from 'fastify-oshara-voice/stores'
import type { EmulatorToolReply, OsharaEmulator } from 'fastify-oshara-voice/emulator'

test('the tools option', () => {
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', tools: { secret: 's' } })
  expect<OsharaVoiceOptions>().type.toBeAssignableFrom({
    origin: 'https://a.example',
    agent: 'a',
    tools: { secret: 's', signingKey: 'k', previousSigningKeys: ['old'], prefix: '/tools', secretHeader: 'x-key', timeoutMs: 5000 }
  })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', tools: {} })
  expect<OsharaVoiceOptions>().type.not.toBeAssignableFrom({ origin: 'https://a.example', agent: 'a', tools: { secret: 's', timeoutMs: '8s' } })
  expect<OsharaToolsOptions['previousSigningKeys']>().type.toBe<string[] | undefined>()
})

test('fastify.oshara.tool: arguments typed from the schema, the context, route options', () => {
  const app = Fastify()
  app.oshara.tool('lookup_order', {
    args: Type.Object({ order_id: Type.String(), quantity: Type.Optional(Type.Integer()) }),
    preHandler: async () => {},
    bodyLimit: 1024,
    handler: async (args, context) => {
      expect(args).type.toBe<{ order_id: string, quantity?: number }>()
      expect(context).type.toBe<OsharaToolContext>()
      expect(context.key).type.toBe<string | undefined>()
      expect(context.signal).type.toBe<AbortSignal>()
      expect(context.metadata).type.toBe<Record<string, unknown>>()
      return { ok: true }
    }
  })
  expect(app.oshara.tool('x', { args: Type.Object({}), handler: () => null, params: {} })).type.toRaiseError()
  expect(app.oshara.tool('x', { handler: () => null })).type.toRaiseError()
  expect(app.oshara.tool).type.toBeCallableWith('x', { args: Type.String(), handler: (args: string) => args.length })
})

test('errors, channel messages, stats, the store and the emulator', () => {
  expect(new OsharaToolRefusedError('No such order.').code).type.toBe<OsharaErrorCode>()
  expect<OsharaErrorCode>().type.toBeAssignableFrom('FST_OSHARA_TOOL_FORBIDDEN')
  expect<OsharaErrorCode>().type.toBeAssignableFrom('FST_OSHARA_SESSION_ENDED')
  expect<OsharaToolMessage['outcome']>().type.toBe<OsharaToolOutcome>()
  expect<OsharaToolMessage['sessionId']>().type.toBe<string | undefined>()
  expect(Fastify().oshara.stats().tools).type.toBe<Record<string, Partial<Record<OsharaToolOutcome, number>>>>()
  expect<SessionStore['sessionState']>().type.toBe<((sessionId: string) => Promise<SessionState | undefined>) | undefined>()
  const emulator = {} as OsharaEmulator
  expect(emulator.callTool('sess_1', { url: 'http://127.0.0.1/t', args: { a: 1 }, headers: { 'x-oshara-secret': 's' } })).type.toBe<Promise<EmulatorToolReply>>()
  expect(emulator.callTool('sess_1', { args: {} })).type.toRaiseError()
})
