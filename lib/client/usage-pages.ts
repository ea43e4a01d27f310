import type { OsharaError } from '../errors.js'
import type { UsagePage } from './parse.js'
import type { OsharaSessionSummary } from './summaries.js'

/**
 * The summaries of usage pages 1, 2, ... up to `ceil(total_sessions / size)`, one page at a time.
 * Only documented fields steer it: a page shorter than `size` (or empty) is the last, and a 404
 * past the first page is the end (the list shrank, or the last page was full).
 */
export async function * usagePages (fetchPage: (page: number) => Promise<UsagePage>, size: number): AsyncGenerator<OsharaSessionSummary> {
  const first = await fetchPage(1)
  yield * first.sessions.data
  const last = Math.ceil(first.total_sessions / size)
  let count = first.sessions.data.length
  for (let page = 2; page <= last && count === size; page++) {
    let data: OsharaSessionSummary[]
    try {
      data = (await fetchPage(page)).sessions.data
    } catch (error) {
      if ((error as OsharaError).upstreamStatus === 404) return
      throw error
    }
    yield * data
    count = data.length
  }
}
