// The part of autocannon 9's library API the benchmark uses (the package ships no types).
declare module 'autocannon' {
  export interface Options {
    url: string
    method?: string
    headers?: Record<string, string>
    body?: string
    connections?: number
    duration?: number
    /** Requests per second across all connections. */
    overallRate?: number
  }

  export interface Result {
    '2xx': number
    non2xx: number
    errors: number
    timeouts: number
    latency: { p50: number, p99: number }
    requests: { average: number }
  }

  function autocannon (options: Options): Promise<Result>
  export default autocannon
}
