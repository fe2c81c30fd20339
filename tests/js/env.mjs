// Where the server under test is: tests/py/test_clients_js.py starts `locallama serve` on a free
// loopback port, creates the models named below, and passes the address in LOCALLAMA_URL.
// Run by hand: LOCALLAMA_URL=http://127.0.0.1:PORT node --test tests/js/*.test.mjs
import assert from 'node:assert/strict'

export const BASE_URL = process.env.LOCALLAMA_URL
if (!BASE_URL) throw new Error('LOCALLAMA_URL is not set: start `locallama serve` and point it there')
export const MODEL = process.env.LOCALLAMA_MODEL ?? 'tiny'           // tiny Llama 3.2, tools template
export const SMOL = process.env.LOCALLAMA_SMOL_MODEL ?? ''           // SmolLM2, or '' when absent
export const GREEDY = { temperature: 0, num_predict: 12, seed: 1 }

// An L2 norm within `tol` of 1: /api/embed and /v1/embeddings normalise every vector.
export function assertUnit (v, tol = 1e-3) {
  const n = v.reduce((s, x) => s + x * x, 0)
  assert.ok(Math.abs(n - 1) < tol, `norm^2 ${n}`)
}

export function maxAbsDiff (a, b) {
  assert.equal(a.length, b.length)
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0)
}

// While serve refuses `format` outright (ollama-api.md §1.0.6 not implemented), the structured
// output tests are skipped under this name instead of failing; any other error still fails.
export const FORMAT_DEFECT = 'SERVER DEFECT: format (ollama-api.md §1.0.6, clients.md §10 item 4) ' +
  "answers 400 'format is not supported yet: constrained (JSON) output is not implemented'"

export function isFormatUnimplemented (e) {
  return e?.status_code === 400 && /format is not supported yet/.test(e?.error ?? '')
}
