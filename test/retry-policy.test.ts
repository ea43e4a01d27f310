import t from 'tap'
import { DEFAULT_RETRY } from '../lib/client/options.js'
import { backoffDelay, serverDelayMs } from '../lib/client/retry.js'

// Retry-After is read as seconds or a date, never as milliseconds; retry-after-ms is milliseconds.

t.test('server delays', async (t) => {
  const now = Date.parse('2026-11-24T12:00:00Z')
  t.equal(serverDelayMs({ 'retry-after': '2' }, now), 2000)
  t.equal(serverDelayMs({ 'retry-after': ' 1.5 ' }, now), 1500, 'decimal seconds')
  t.equal(serverDelayMs({ 'retry-after': 'Tue, 24 Nov 2026 12:00:03 GMT' }, now), 3000, 'HTTP date')
  t.equal(serverDelayMs({ 'retry-after': 'Tue, 24 Nov 2026 11:59:00 GMT' }, now), 0, 'a date in the past means now')
  t.equal(serverDelayMs({ 'retry-after-ms': '250', 'retry-after': '9' }, now), 250, 'retry-after-ms wins')
  t.equal(serverDelayMs({ 'retry-after-ms': 'soon', 'retry-after': '9' }, now), 9000, 'an unreadable retry-after-ms is ignored')
  t.equal(serverDelayMs({ 'retry-after': 'later' }, now), undefined)
  t.equal(serverDelayMs({ 'retry-after': '-1' }, now), undefined)
  t.equal(serverDelayMs({ 'retry-after': ['1', '2'] }, now), undefined, 'a repeated header is not trusted')
  t.equal(serverDelayMs({}, now), undefined)
})

t.test('full jitter stays within min(maxDelayMs, minDelayMs * 2^retry)', async (t) => {
  for (const [retry, cap] of [[0, 250], [1, 500], [2, 1000], [3, 2000], [6, 2000]]) {
    const delays = Array.from({ length: 200 }, () => backoffDelay(DEFAULT_RETRY, retry as number))
    t.ok(delays.every((delay) => delay >= 0 && delay < (cap as number)), `retry ${retry}: below ${cap}`)
    t.ok(new Set(delays).size > 50, `retry ${retry}: jittered`)
  }
})
