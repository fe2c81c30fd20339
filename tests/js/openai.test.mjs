// openai-node 6.x, unchanged, against locallama serve's /v1 (clients.md §8): chat, streaming
// with stream_options.include_usage, models.list, embeddings (base64 by default, decoded by the
// SDK; must equal the float form) and the NotFoundError. 7.x needs Node 22; Node 20 is ours.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { BASE_URL, MODEL, assertUnit } from './env.mjs'

const client = new OpenAI({ baseURL: `${BASE_URL}/v1`, apiKey: 'ollama', maxRetries: 0 })
const messages = [{ role: 'user', content: 'Why is the sky blue?' }]

test('chat.completions.create', async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, temperature: 0, seed: 1 })
  assert.match(r.id, /^chatcmpl-/)
  assert.equal(r.object, 'chat.completion')
  assert.equal(r.model, MODEL)
  assert.ok(Number.isInteger(r.created))
  const c = r.choices[0]
  assert.equal(c.index, 0)
  assert.equal(c.message.role, 'assistant')
  assert.equal(typeof c.message.content, 'string')
  assert.equal(c.finish_reason, 'length')
  assert.equal(r.usage.completion_tokens, 8)
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 8)
})

test('streaming with include_usage equals the one-shot answer', async () => {
  const plain = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 10, temperature: 0 })
  const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 10, temperature: 0,
    stream: true, stream_options: { include_usage: true } })
  const chunks = []
  for await (const ch of stream) chunks.push(ch)
  assert.ok(chunks.every(c => c.object === 'chat.completion.chunk' && c.model === MODEL))
  assert.equal(new Set(chunks.map(c => c.id)).size, 1)
  assert.equal(chunks[0].choices[0].delta.role, 'assistant')
  const text = chunks.filter(c => c.choices.length).map(c => c.choices[0].delta.content ?? '').join('')
  assert.equal(text, plain.choices[0].message.content)
  const finish = chunks.filter(c => c.choices.length && c.choices[0].finish_reason)
  assert.equal(finish.length, 1)
  assert.equal(finish[0].choices[0].finish_reason, 'length')
  const last = chunks.at(-1)
  assert.deepEqual(last.choices, [])
  assert.equal(last.usage.completion_tokens, 10)
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + 10)
})

test('models.list', async () => {
  const ids = []
  for await (const m of client.models.list()) ids.push(m.id)
  assert.ok(ids.includes(`${MODEL}:latest`), JSON.stringify(ids))
})

test('embeddings: the default base64 answer decodes to the float answer', async () => {
  const input = ['hello', 'a longer sentence here']
  const b64 = await client.embeddings.create({ model: MODEL, input })       // SDK asks for base64
  const flt = await client.embeddings.create({ model: MODEL, input, encoding_format: 'float' })
  assert.equal(b64.data.length, 2)
  for (let i = 0; i < 2; i++) {
    const a = b64.data[i].embedding
    const b = flt.data[i].embedding
    assert.equal(b64.data[i].index, i)
    assert.ok(Array.isArray(a) && a.length === b.length && a.length > 0)
    assertUnit(a)
    // float32 on the wire both ways: decoded bits equal the float values rounded to float32
    a.forEach((x, j) => assert.equal(x, Math.fround(b[j]), `component ${j}`))
  }
  assert.ok(b64.usage.prompt_tokens > 0)
  // the raw answer to a base64 request is a string per vector
  const raw = await client.embeddings.create({ model: MODEL, input: 'hello', encoding_format: 'base64' })
  assert.equal(typeof raw.data[0].embedding, 'string')
})

test('unknown model: NotFoundError with the server message', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.message === "404 model 'nope' not found")
  await assert.rejects(client.embeddings.create({ model: 'nope', input: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && /not found/.test(e.message))
})

test('models.retrieve', async () => {
  const m = await client.models.retrieve(MODEL)
  assert.equal(m.id, MODEL)
  assert.equal(m.object, 'model')
  assert.ok(Number.isInteger(m.created))
})

test('chat with tools: accepted, and any tool call carries JSON-string arguments', async () => {
  const tools = [{ type: 'function', function: { name: 'add', description: 'Add two ints',
    parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'] } } }]
  const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'What is 3 + 4?' }],
    tools, max_tokens: 12, temperature: 0 })
  const c = r.choices[0]
  assert.ok(['stop', 'length', 'tool_calls'].includes(c.finish_reason), c.finish_reason)
  for (const call of c.message.tool_calls ?? []) {
    assert.equal(call.type, 'function')
    assert.equal(typeof call.id, 'string')
    assert.equal(typeof call.function.arguments, 'string')
    JSON.parse(call.function.arguments)
  }
  // a tool turn in the history (assistant tool_calls + tool result) is accepted
  const r2 = await client.chat.completions.create({ model: MODEL, tools, max_tokens: 4, temperature: 0, messages: [
    { role: 'user', content: 'What is 3 + 4?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'add', arguments: '{"a":3,"b":4}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '7' }] })
  assert.equal(r2.choices[0].message.role, 'assistant')
})
