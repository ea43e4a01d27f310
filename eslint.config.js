import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist/**', 'coverage/**', '.tap/**', 'test/artifacts/**', 'bench/.out/**', '.readme-snippets-*/**']
})
