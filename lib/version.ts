/** The package version, sent upstream as `user-agent: fastify-oshara-voice/<version>`; a test keeps it equal to package.json. */
export const VERSION = '0.1.0'
