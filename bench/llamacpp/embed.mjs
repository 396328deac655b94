// embed.mjs MODEL SHORT LONG TEXTS THREADS — llama.cpp's embedding speed on a GGUF
// through npm's node-llama-cpp (see ../vs_llamacpp_embed.sh), on the texts kiln bench
// uses: SHORT-token and LONG-token texts made of the word "a" ([CLS] and [SEP] make
// up the rest). Prints one JSON line: ms per short text (mean over 60 calls after a
// warm-up) and tokens per second over TEXTS long texts (one text per call, as the
// library embeds them), 3 repetitions.
import {getLlama} from "node-llama-cpp";

const [path, short, long, texts, threads] = process.argv.slice(2).map((v, i) => (i ? +v : v));
const text = (n) => Array(Math.max(n - 2, 0)).fill("a").join(" ");
const llama = await getLlama({gpu: false, build: "never", logLevel: "warn"});
const model = await llama.loadModel({modelPath: path});
const ctx = await model.createEmbeddingContext({contextSize: Math.max(long, 512), batchSize: Math.max(long, 512), threads});
const s = text(short), l = text(long);
if (model.tokenize(s).length + 2 !== short) console.error(`note: short text is ${model.tokenize(s).length} tokens + specials`);
await ctx.getEmbeddingFor(s);
const ms = [], tps = [];
for (let rep = 0; rep < 3; rep++) {
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await ctx.getEmbeddingFor(s);
    ms.push(performance.now() - t0);
  }
  const t0 = performance.now();
  for (let i = 0; i < texts; i++) await ctx.getEmbeddingFor(l);
  tps.push((texts * long) / ((performance.now() - t0) / 1000));
}
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
console.log(JSON.stringify({short_ms: mean(ms), batch_tok_s: mean(tps), rss_mib: process.memoryUsage().rss / 1048576}));
process.exit(0);
