import t from 'tap'
import Fastify from 'fastify'
import swagger from '@fastify/swagger'
import osharaVoice from '../lib/index.js'
import { ORIGIN } from './helpers/emulator.js'

// The routes as @fastify/swagger documents them: body fields, reply, tags and security from routeOptions.

t.test('the voice-token routes in the OpenAPI document', async (t) => {
  const app = Fastify()
  await app.register(swagger, { openapi: { info: { title: 'api', version: '1' }, components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } } })
  await app.register(osharaVoice, {
    origin: ORIGIN,
    agent: 'support-bot',
    agents: ['support-bot'],
    baseUrl: 'http://127.0.0.1:9',
    limits: { concurrency: 1 },
    routeOptions: { schema: { tags: ['voice'], summary: 'Mint a voice session', security: [{ bearer: [] }], externalDocs: { url: 'https://docs.example.com/voice' } } }
  })
  t.teardown(() => app.close())
  await app.ready()
  const document = app.swagger() as unknown as { paths: Record<string, Record<string, Record<string, unknown>>> }
  const post = document.paths['/voice-token']?.post
  t.match(post, { tags: ['voice'], summary: 'Mint a voice session', security: [{ bearer: [] }], externalDocs: { url: 'https://docs.example.com/voice' } })
  const body = (post?.requestBody as { content: Record<string, { schema: { properties: Record<string, unknown>, additionalProperties: boolean } }> }).content['application/json']?.schema
  t.same(Object.keys(body?.properties ?? {}).sort(), ['agent', 'language', 'participant_attributes', 'participant_identity', 'participant_metadata', 'participant_name', 'room_config', 'room_name'])
  t.equal(body?.additionalProperties, false)
  const reply = (post?.responses as Record<string, { content: Record<string, { schema: { properties: Record<string, unknown> } }> }>)['200']?.content['application/json']?.schema
  t.ok(reply?.properties.token && reply.properties.server_url && reply.properties.participant_token)
  const remove = document.paths['/voice-token/{session_id}']?.delete
  t.match(remove, { tags: ['voice'], parameters: [{ name: 'session_id', in: 'path', required: true }] })
})
