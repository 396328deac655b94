// openai_client.mjs — the official `openai` npm client against kiln serve:
// a non-streamed and a streamed chat completion, a completion, the model list, and
// images.generate (b64_json and url) on a Stable Diffusion model.
// Usage: node openai_client.mjs BASE_URL (the client is resolved from NODE_PATH's
// installation made by openai_client.sh).
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "test-key" });
let failed = 0;
const check = (what, cond, detail) => {
  if (!cond) {
    failed++;
    console.log("FAIL:", what, detail === undefined ? "" : JSON.stringify(detail));
  } else {
    console.log("ok:", what);
  }
};

const models = await client.models.list();
check("models.list has stories260K", models.data.some((m) => m.id === "stories260K"), models.data);

const messages = [{ role: "user", content: "Tell me a story about a cat." }];
const chat = await client.chat.completions.create({
  model: "stories260K", messages, max_tokens: 40, temperature: 0, seed: 1,
});
const text = chat.choices[0].message.content;
check("chat completion has text", typeof text === "string" && text.length > 0, chat);
check("chat completion usage", chat.usage.completion_tokens > 0 && chat.usage.total_tokens > 0, chat.usage);
check("chat finish_reason", ["stop", "length"].includes(chat.choices[0].finish_reason), chat.choices[0]);

const stream = await client.chat.completions.create({
  model: "stories260K", messages, max_tokens: 40, temperature: 0, seed: 1, stream: true,
  stream_options: { include_usage: true },
});
let streamed = "", chunks = 0, finish = null, usage = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.choices.length) {
    streamed += chunk.choices[0].delta.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  if (chunk.usage) usage = chunk.usage;
}
check("streamed chat arrives in several chunks", chunks > 3, chunks);
check("streamed text equals the non-streamed text", streamed === text, { streamed, text });
check("streamed finish_reason", finish === chat.choices[0].finish_reason, finish);
check("streamed usage", usage && usage.completion_tokens === chat.usage.completion_tokens, usage);

const cmpl = await client.completions.create({ model: "stories260K", prompt: "Once upon a time", max_tokens: 20,
  temperature: 0 });
check("completion text", cmpl.choices[0].text.startsWith(", there was"), cmpl.choices[0]);

// images: b64_json (kiln's extras steps and seed go through the client as they are)
const pngSize = (buf) => buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
  ? [buf.readUInt32BE(16), buf.readUInt32BE(20)] : null;
const img = await client.images.generate({ model: "sd", prompt: "a red fox", n: 2, size: "64x96",
  response_format: "b64_json", steps: 2, seed: 11 });
const pngs = img.data.map((d) => Buffer.from(d.b64_json, "base64"));
check("images.generate: two PNGs of 64x96", pngs.length === 2 && pngs.every((b) => {
  const s = pngSize(b);
  return s && s[0] === 64 && s[1] === 96;
}), img.data.map((d) => d.b64_json.slice(0, 16)));
check("images.generate: created, and seeds s and s+1", typeof img.created === "number" &&
  img.data[0].seed === 11 && img.data[1].seed === 12, { created: img.created, seeds: img.data.map((d) => d.seed) });
check("images.generate: the parameters chunk", pngs[0].toString("latin1").includes("parameters\0a red fox\nSteps: 2"));
const byUrl = await client.images.generate({ model: "sd", prompt: "a red fox", size: "64x96", response_format: "url",
  steps: 2, seed: 11 });
const got = await fetch(byUrl.data[0].url, { headers: { Authorization: "Bearer test-key" } });
const fetched = Buffer.from(await got.arrayBuffer());
check("images.generate url: the same PNG at the URL", got.status === 200 &&
  got.headers.get("content-type") === "image/png" && fetched.equals(pngs[0]), { url: byUrl.data[0].url, status: got.status });
try {
  await client.images.generate({ model: "sd", prompt: "x", size: "65x64" });
  check("bad image size raises", false);
} catch (e) {
  check("bad image size raises BadRequestError (400)", e.status === 400 && /multiple of 8/.test(e.message), e.message);
}

try {
  await client.chat.completions.create({ model: "no-such-model", messages, max_tokens: 5 });
  check("unknown model raises", false);
} catch (e) {
  check("unknown model raises NotFoundError (404)", e.status === 404, e.status);
}
console.log(failed ? `openai client: ${failed} failed` : "openai client: all passed");
process.exit(failed ? 1 : 0);
