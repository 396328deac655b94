// openai_client.mjs — the official `openai` npm client against kiln serve:
// a non-streamed and a streamed chat completion, a completion, and the model list.
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

try {
  await client.chat.completions.create({ model: "no-such-model", messages, max_tokens: 5 });
  check("unknown model raises", false);
} catch (e) {
  check("unknown model raises NotFoundError (404)", e.status === 404, e.status);
}
console.log(failed ? `openai client: ${failed} failed` : "openai client: all passed");
process.exit(failed ? 1 : 0);
