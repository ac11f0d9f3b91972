// Drives `qwenvl serve` (tiny fixture model) with the official `openai` npm client: models,
// plain and streamed completions, logprobs, a data-URL image with its own pixel limits, the
// error statuses the client maps to its exception classes (400, 401, 413), a client that
// aborts mid-stream, and the server answering afterwards. Exits non-zero on the first failure.
// Environment: QWENVL_URL (http://127.0.0.1:PORT), QWENVL_KEY, QWENVL_IMAGE (a PNG file).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const base = process.env.QWENVL_URL;
const key = process.env.QWENVL_KEY;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 60000 });
const model = 'tiny-tied';
const hello = [{ role: 'user', content: 'Hello' }];

async function metric(name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.split(' ')[1]);
}

async function expectStatus(status, ErrorClass, promise) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof ErrorClass, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, status);
    assert.equal(typeof e.error?.message, 'string');
    return true;
  });
}

async function completes() {
  const reply = await client.chat.completions.create({ model, messages: hello, max_tokens: 2 });
  assert.equal(reply.object, 'chat.completion');
  assert.equal(typeof reply.choices[0].message.content, 'string');
}

const steps = {
  async models() {
    const list = await client.models.list();
    assert.deepEqual(list.data.map((m) => m.id), [model]);
  },

  async plain() {
    const reply = await client.chat.completions.create({
      model, messages: hello, max_tokens: 5, ignore_eos: true });
    assert.equal(reply.choices[0].message.role, 'assistant');
    assert.equal(reply.choices[0].finish_reason, 'length');
    assert.equal(reply.usage.completion_tokens, 5);
    assert.ok(reply.usage.prompt_tokens > 5);
  },

  async streamed() {
    const stream = await client.chat.completions.create({
      model, messages: hello, max_tokens: 4, ignore_eos: true, stream: true,
      stream_options: { include_usage: true } });
    let text = '', finish = null, usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices.length === 0) continue;
      text += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    assert.equal(finish, 'length');
    assert.equal(usage.completion_tokens, 4);
    const whole = await client.chat.completions.create({
      model, messages: hello, max_tokens: 4, ignore_eos: true });
    assert.equal(text, whole.choices[0].message.content);
  },

  async logprobs() {
    const reply = await client.chat.completions.create({
      model, messages: hello, max_tokens: 3, ignore_eos: true, logprobs: true, top_logprobs: 2,
      frequency_penalty: 0.5, presence_penalty: 0.5 });
    const content = reply.choices[0].logprobs.content;
    assert.equal(content.length, 3);
    for (const entry of content) {
      assert.ok(entry.logprob <= 0);
      assert.ok(Array.isArray(entry.bytes));
      assert.equal(entry.top_logprobs.length, 2);
    }
  },

  async image() {
    const url = `data:image/png;base64,${readFileSync(process.env.QWENVL_IMAGE).toString('base64')}`;
    const ask = (part) => client.chat.completions.create({
      model, max_tokens: 2, messages: [{ role: 'user', content: [
        { type: 'image_url', image_url: { url }, ...part },
        { type: 'text', text: 'What is this?' }] }] });
    const plain = await ask({});
    const tokens = plain.usage.prompt_tokens_details.image_tokens;
    assert.ok(tokens > 1, `image tokens ${tokens}`);
    // Qwen's per-image pixel limits beside the URL: 28 x 28 pixels make one merged token.
    const small = await ask({ min_pixels: 784, max_pixels: 784 });
    assert.equal(small.usage.prompt_tokens_details.image_tokens, 1);
  },

  async errors() {
    await expectStatus(400, OpenAI.BadRequestError,
      client.chat.completions.create({ model, messages: hello, temperature: -1 }));
    await expectStatus(400, OpenAI.BadRequestError, client.chat.completions.create({
      model, messages: [{ role: 'user', content: [{ type: 'image_url',
        image_url: { url: 'data:image/png;base64,bm90IGEgcG5n' } }] }] }));
    const stranger = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await expectStatus(401, OpenAI.AuthenticationError,
      stranger.chat.completions.create({ model, messages: hello }));
    await expectStatus(413, OpenAI.APIError, client.chat.completions.create({
      model, messages: [{ role: 'user', content: 'a'.repeat(2 << 20) }] }));
    await completes();
  },

  async abort() {
    const before = await metric('qwenvl_generation_tokens_total');
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model, messages: hello, max_tokens: 4000, ignore_eos: true, stream: true },
      { signal: controller.signal });
    let chunks = 0;
    // The client ends the iteration quietly once its request is aborted.
    for await (const chunk of stream) {
      assert.ok(chunk.choices !== undefined);
      if (++chunks === 3) controller.abort();
    }
    assert.ok(chunks >= 3 && chunks < 50, `${chunks} chunks`);
    await completes();
    for (let i = 0; i < 400 && (await metric('qwenvl_running_sequences')) !== 0; ++i)
      await new Promise((r) => setTimeout(r, 25));
    assert.equal(await metric('qwenvl_running_sequences'), 0);
    const generated = (await metric('qwenvl_generation_tokens_total')) - before;
    assert.ok(generated < 1000, `the aborted request went on for ${generated} tokens`);
  },
};

for (const [name, step] of Object.entries(steps)) {
  const start = Date.now();
  await step();
  console.log(`ok ${name} (${Date.now() - start} ms)`);
}
