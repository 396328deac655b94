// bench.mjs MODEL PP TG THREADS — prompt and generation speed of llama.cpp on a GGUF,
// through the prebuilt CPU libraries of npm's node-llama-cpp (see ../vs_llamacpp.sh):
// pp = one evaluation of PP token ids, tg = TG greedy tokens from an empty context,
// 3 repetitions, printed as JSON lines.
import {getLlama} from "node-llama-cpp";

const [path, pp, tg, threads] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
const llama = await getLlama({gpu: false, build: "never", logLevel: "warn"});
const model = await llama.loadModel({modelPath: path});
const ctx = await model.createContext({contextSize: Math.max(1024, pp + tg + 8), batchSize: pp, threads});
const seq = ctx.getSequence();
const ids = Array.from({length: pp}, (_, i) => 100 + (i * 7919) % 30000);
for (let rep = 0; rep < 3; rep++) {
  await seq.clearHistory();
  let t0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(ids);
  const ppS = (performance.now() - t0) / 1000;
  await seq.clearHistory();
  let n = 0;
  t0 = performance.now();
  for await (const _ of seq.evaluate([1], {temperature: 0})) if (++n >= tg) break;
  const tgS = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({rep, pp_tok_s: pp / ppS, tg_tok_s: tg / tgS}));
}
process.exit(0);
