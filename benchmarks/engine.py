"""The engine table: MiniLM's largest layer and the whole model in ONNX Runtime, three precisions.

    .venv/bin/python benchmarks/engine.py            # the table alone
    .venv/bin/python benchmarks/run_all.py --engine  # inside the benchmark report

What chapter 14 measures, without the notebook: the machine's roofline probes (memory bandwidth
from a 128 MB copy, ONNX Runtime's float32 MatMul and int8 MatMulInteger throughput), one layer
(intermediate.dense, 384 -> 1536, 32 different copies so the float32 weights leave the cache)
at batch 1 and 64, and all-MiniLM-L6-v2 exported to ONNX (cached in quantbook's cache folder)
at batch 1 and 32. The precisions of one comparison are timed in turns (A, B, C, A, B, C, ...),
medians after a warm-up. Nothing here is a target: the speed-ups are facts about the machine,
reported with its CPU, capability and thread count.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from quantbook import data, engine

K, N, COPIES = 384, 1536, 32
THREADS = 1  # as in the chapter: on a shared machine a spinning thread pool times the neighbours
PRECISIONS = ("float32", "int8", "int4")


def roofline() -> dict:
    return {"bandwidth": engine.copy_bandwidth(),
            "float32": engine.matmul_throughput("float32", threads=THREADS),
            "int8": engine.matmul_throughput("int8", threads=THREADS)}


def layer_rows(probes: dict, repeats: int) -> list[dict]:
    weight = data.minilm_linear_weights()["encoder.layer.0.intermediate.dense.weight"]
    models = {"float32": engine.linear_model(np.ascontiguousarray(weight.T), copies=COPIES)}
    models["int8"] = engine.quantize_int8(models["float32"])
    models["int4"] = engine.quantize_int4(models["float32"], block_size=32)
    sessions = {name: engine.session(m, THREADS) for name, m in models.items()}
    weight_bytes = {name: sum(a.nbytes for a in engine.onnx_weights(m).values()) / COPIES
                    for name, m in models.items()}
    rows = []
    rng = np.random.default_rng(0)
    for b in (1, 64):
        x = rng.standard_normal((b, K)).astype(np.float32)
        timings = engine.time_interleaved(
            {name: (lambda s=s, x=x: s.run(None, {"x": x})) for name, s in sessions.items()},
            repeats=repeats, warmup=1)
        for name in PRECISIONS:
            nbytes = weight_bytes[name] + 4 * (b * K + b * N)
            roof = probes["int8"] if name == "int8" else probes["float32"]
            rows.append({"what": f"layer {K}->{N}", "precision": name, "batch": b,
                         "seconds": timings[name].median / COPIES, "mb": nbytes / 1e6,
                         "roofline": engine.roofline_time(2 * b * K * N, nbytes, roof,
                                                          probes["bandwidth"])})
    return rows


def model_rows(repeats: int) -> list[dict]:
    paths = {name: engine.minilm_onnx(name) for name in PRECISIONS}
    sessions = {name: engine.session(p, THREADS) for name, p in paths.items()}
    tokenizer = engine.minilm_tokenizer()
    _, _, queries, _ = data.load_bbc_retrieval_split()
    lengths = [len(tokenizer(s)["input_ids"]) for s in queries[:100]]
    one = tokenizer([queries[int(np.argsort(lengths)[50])]], return_tensors="np")
    batch = tokenizer(queries[:32], padding=True, return_tensors="np")
    rows = []
    for b, enc in ((1, one), (32, batch)):
        feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
        timings = engine.time_interleaved(
            {name: (lambda s=s, f=feeds: s.run(None, f)) for name, s in sessions.items()},
            repeats=repeats if b == 1 else max(3, repeats // 2), warmup=1)
        for name in PRECISIONS:
            rows.append({"what": f"MiniLM, {enc['input_ids'].shape[1]} tokens", "precision": name,
                         "batch": b, "seconds": timings[name].median,
                         "mb": engine.file_megabytes(paths[name]), "roofline": None})
    return rows


def table(repeats: int = 7) -> str:
    start = time.perf_counter()
    info = engine.machine_info()
    probes = roofline()
    rows = layer_rows(probes, repeats) + model_rows(repeats)
    lines = [
        f"CPU {info['cpu']}, capability {info['capability']}, {THREADS} of {info['cpus']} CPU(s), "
        f"last-level cache {info['cache_mb']} MiB, onnxruntime {info['onnxruntime']}; "
        f"copy bandwidth {probes['bandwidth'] / 1e9:.1f} GB/s, ONNX Runtime float32 "
        f"{probes['float32'] / 1e9:.0f} Gop/s, int8 {probes['int8'] / 1e9:.0f} Gop/s.",
        "",
        "| what | precision | batch | MB (weights read / file) | ms | roofline ms | x float32 |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        base = next(x for x in rows if x["what"] == r["what"] and x["batch"] == r["batch"]
                    and x["precision"] == "float32")
        roof = "" if r["roofline"] is None else f"{r['roofline'] * 1e3:.3f}"
        speedup = base["seconds"] / r["seconds"]
        lines.append(f"| {r['what']} | {r['precision']} | {r['batch']} | {r['mb']:.2f} "
                     f"| {r['seconds'] * 1e3:.3f} | {roof} | {speedup:.2f} |")
    lines += ["", f"(measured in {time.perf_counter() - start:.0f} s; x float32 = float32 time / "
              "this time, above 1 is faster)"]
    return "\n".join(lines)


def main() -> int:
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
