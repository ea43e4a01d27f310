export interface EmulatorCharacter {
  slug: string
  /** Origins (scheme://host[:port]) allowed to mint sessions for this character. */
  allowed_origins: string[]
  system_prompt?: string
  greeting?: string
  language?: string
  /** Concurrent sessions this character may have; past it the emulator answers 429. */
  max_concurrent_sessions?: number
  /** An inactive character answers 404 like an unknown slug. Default true. */
  active?: boolean
}

export interface EmulatorOptions {
  characters: EmulatorCharacter[]
  /**
   * Valid `X-API-Key` values. The billing endpoint requires one; the session endpoint answers
   * 401 to a key that is sent but not listed (and to none at all when `requireApiKey`).
   */
  apiKeys?: string[]
  /** The session endpoint refuses calls without a valid key. Default false. */
  requireApiKey?: boolean
  /** `expires_in_seconds` of minted sessions and the token `exp`. Default 3600. */
  tokenTtlSeconds?: number
  /** `livekit_url` in replies. Default `ws://127.0.0.1:7880`. */
  livekitUrl?: string
  /** LiveKit API key (`iss` claim). Default `devkey`. */
  livekitApiKey?: string
  /** HS256 secret for tokens. Default `secret`. */
  livekitApiSecret?: string
  /** Keep every request in `requests`. Default true; false for long runs (benchmarks, a demo left open). */
  record?: boolean
  /** Default 0: a free port. */
  port?: number
  /** Default `127.0.0.1`. */
  host?: string
}

/**
 * A fault applied to the next session request(s). Fields combine: `delayMs` waits before
 * anything else; then exactly one of `reset`, `status`, `malformed`, `oversizedBytes`,
 * `slowBodyMs` decides the answer (in that order of precedence).
 */
export interface EmulatorFault {
  /** Wait this long before answering (slow headers). */
  delayMs?: number
  /** Destroy the connection after reading the request, without answering. */
  reset?: boolean
  /** Answer with this status (and `body`, `headers`) instead of handling the request. */
  status?: number
  /** Body for `status`: an object is sent as JSON, a string as is. Default `{"detail": "..."}`. */
  body?: unknown
  /** Extra response headers, e.g. `{ 'retry-after': '1' }`. */
  headers?: Record<string, string>
  /** Answer 200 with a body that is not JSON. */
  malformed?: boolean
  /** Answer 200 with a JSON body of (at least) this many bytes. */
  oversizedBytes?: number
  /**
   * Send the answer (the normal one: 200 with a session for a valid request) with its
   * `content-length`, but only half the body; wait this long, then send the rest.
   */
  slowBodyMs?: number
}

export interface RecordedRequest {
  /** 1-based order of arrival. */
  seq: number
  method: string
  /** Path and query, as received. */
  url: string
  /** Lower-cased header names. */
  headers: Record<string, string | string[] | undefined>
  /** Parsed JSON body, or undefined when empty or not JSON. */
  body: unknown
  rawBody: string
  /** 1-based id of the TCP connection it arrived on. */
  connection: number
  /** Status answered, undefined while pending or when reset/aborted. */
  status?: number
  /** The client closed the connection before the answer was complete. */
  aborted: boolean
  /** A fault was applied to it. */
  fault?: EmulatorFault
}

export interface EmulatorSession {
  session_id: string
  character_slug: string
  room_name: string
  participant_identity: string
  language?: string
  metadata?: Record<string, unknown>
  created_at: string
  /** epoch ms */
  expiresAt: number
  ended: boolean
  /** ISO time `endSession` ended it. */
  ended_at?: string
}

export interface OsharaEmulator {
  /** Base URL, e.g. `http://127.0.0.1:41234`; pass it as the plugin's `baseUrl`. */
  readonly url: string
  readonly port: number
  /** Every request received, in order. */
  readonly requests: RecordedRequest[]
  /** TCP connections accepted so far. */
  readonly connectionCount: number
  /** Sessions minted so far (ended ones included). */
  readonly sessions: ReadonlyMap<string, EmulatorSession>
  /** Active (not ended, not expired) sessions, optionally of one character. */
  activeSessions (slug?: string): number
  /** Queue a fault for the next `times` (default 1) session requests. */
  fault (fault: EmulatorFault, times?: number): void
  /** Drop queued faults. */
  clearFaults (): void
  /** End a session: frees its concurrency slot. False when unknown or already ended. */
  endSession (sessionId: string): boolean
  /** Forget recorded requests (sessions and faults stay). */
  clearRequests (): void
  /** Resolves once `predicate` holds for some recorded request, or rejects after `timeoutMs` (default 2000). */
  waitForRequest (predicate: (request: RecordedRequest) => boolean, timeoutMs?: number): Promise<RecordedRequest>
  close (): Promise<void>
}
