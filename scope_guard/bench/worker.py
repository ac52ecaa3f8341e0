"""One benchmark pipeline, run in its own process so that its peak memory is its own.

Invoked by :mod:`scope_guard.bench.runner` as ``python -m scope_guard.bench.worker JSON`` and
prints one JSON object. The model is a random-weight Gemma 2 of a named shape, or a real reader
(``model``: e.g. ``gemma-3-270m``, a folder or a GGUF) read at ``layer``. Pipelines:

- ``floor``: a bare forward pass of the decoder cut to the hooked layer (no hooks, no SAE);
- ``scope_guard``: :meth:`Reader.read` (tokenize, stopped hooked pass) + full SAE encode + pool;
- ``scope_guard_narrow``: the same with the SAE narrowed to ``n_narrow`` latents;
- ``naive``: the whole model with ``output_hidden_states`` and the LM head, then the full SAE
  over every token, then the response rows pooled.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

PIPELINES = ("floor", "scope_guard", "scope_guard_narrow", "naive")


def _random_sae(d_model: int, d_sae: int, n_latents: int, site: Any, generator: torch.Generator):
    from scope_guard.sae.jumprelu import JumpReLUSAE, SAEInfo

    ids = torch.randperm(d_sae, generator=generator)[:n_latents].sort().values
    W_enc = torch.randn(d_model, n_latents, generator=generator) / d_model**0.5
    return JumpReLUSAE(
        W_enc,
        torch.randn(n_latents, d_model, generator=generator) / n_latents**0.5,
        torch.zeros(n_latents),
        torch.zeros(d_model),
        torch.full((n_latents,), 0.5),
        info=SAEInfo(d_model=d_model, d_sae=d_sae, site=site, source="random"),
        latent_ids=ids,
    )


def _exchange_text(tokenizer: Any, encoder: Any, n_tokens: int) -> tuple[str, str]:
    """A prompt and response whose exchange is about ``n_tokens`` long (response: a quarter)."""
    from scope_guard.reader.miniature import _corpus

    text = " ".join(_corpus(n_tokens, seed=1))
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    n_response = max(1, n_tokens // 4)
    overhead = len(encoder.head_ids) + len(encoder.middle_ids)
    n_prompt = max(0, n_tokens - n_response - overhead)
    prompt = text[: offsets[n_prompt][0]] if n_prompt else ""
    rest = text[offsets[n_prompt][0] :]
    rest_offsets = tokenizer(rest, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    return prompt, rest[: rest_offsets[n_response][0]].lstrip()


def _time(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()  # warm-up: allocator, kernels, lazy initialisation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _real_model(spec: dict[str, Any], pipeline: str, dtype: torch.dtype) -> tuple[Any, Any, int]:
    """A real reader's decoder cut after ``layer`` (the whole model with its LM head for the
    naive pipeline), its tokenizer, and ``d_model``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scope_guard.errors import ConfigError
    from scope_guard.reader.loading import (
        load_decoder,
        quiet_transformers,
        refuse_remote_code,
        text_config,
    )
    from scope_guard.reader.sources import resolve_reader_folder

    folder = resolve_reader_folder(spec["model"], dtype=dtype)
    layer = int(spec["layer"])
    refuse_remote_code(folder)
    if pipeline == "naive":
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=dtype, trust_remote_code=False
            ).eval()
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        if layer >= int(text_config(model.config).num_hidden_layers):
            msg = f"--layer {layer} is beyond the model's layers"
            raise ConfigError(msg)
        return model, tokenizer, int(model.config.hidden_size)
    loaded = load_decoder(folder, deepest_layer=layer, dtype=dtype, device=torch.device("cpu"))
    return loaded.decoder, loaded.tokenizer, int(text_config(loaded.config).hidden_size)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from transformers import AutoTokenizer, Gemma2ForCausalLM, Gemma2Model

    from scope_guard.bench.shapes import get_shape
    from scope_guard.features import Pooling, encode_reading, pool_codes
    from scope_guard.reader import ExchangeEncoder, Reader, miniature_model_path
    from scope_guard.reader.loading import parse_dtype
    from scope_guard.sites import Site, SiteKind

    torch.set_num_threads(int(spec["threads"]))
    shape = get_shape(spec["shape"])
    pipeline = spec["pipeline"]
    dtype = parse_dtype(spec["dtype"], torch.device("cpu"))
    real = spec.get("model") is not None
    layer = int(spec["layer"]) if real else shape.layer
    site = Site(layer, SiteKind.RESID_POST)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)

    start = time.perf_counter()
    if real:
        model, tokenizer, d_model = _real_model(spec, pipeline, dtype)
        d_sae = int(spec["d_sae"])
    else:
        tokenizer = AutoTokenizer.from_pretrained(miniature_model_path())
        if pipeline == "naive":
            model = Gemma2ForCausalLM._from_config(shape.config(), dtype=dtype).eval()
        else:
            model = Gemma2Model._from_config(shape.config(shape.layer + 1), dtype=dtype).eval()
        d_model, d_sae = shape.hidden_size, shape.d_sae
    build_s = time.perf_counter() - start
    encoder = ExchangeEncoder(tokenizer, max_tokens=int(spec["tokens"]) + 64)
    prompt, response = _exchange_text(tokenizer, encoder, int(spec["tokens"]))
    n_latents = int(spec["n_narrow"]) if pipeline == "scope_guard_narrow" else d_sae
    sae = _random_sae(d_model, d_sae, n_latents, site, generator)

    enc = encoder.encode(prompt, response)
    ids = torch.tensor([enc.input_ids])

    def floor() -> None:
        with torch.inference_mode():
            model(input_ids=ids, use_cache=False)

    if pipeline in ("scope_guard", "scope_guard_narrow"):
        reader = Reader(model, tokenizer, [site], max_tokens=encoder.max_tokens)

        def step() -> None:
            encode_reading(reader.read(prompt, response), {site: sae}, Pooling.MEAN_MAX)

    elif pipeline == "naive":

        def step() -> None:
            e = encoder.encode(prompt, response)
            with torch.inference_mode():
                out = model(
                    input_ids=torch.tensor([e.input_ids]),
                    output_hidden_states=True,
                    use_cache=False,
                )
                codes = sae.encode(out.hidden_states[layer + 1][0])
                pool_codes(codes[e.response_start :], Pooling.MEAN_MAX)

    else:
        step = floor

    times = _time(step, int(spec["repeats"]))
    median = statistics.median(times)
    return {
        "pipeline": pipeline,
        "shape": spec["model"] if real else shape.name,
        "layer": layer,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": int(spec["threads"]),
        "n_tokens": len(enc.input_ids),
        "n_response_tokens": enc.n_response_tokens,
        "n_latents": n_latents if pipeline != "floor" else 0,
        "times_s": times,
        "median_s": median,
        "tokens_per_s": len(enc.input_ids) / median,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "build_s": build_s,
    }


def main() -> None:
    # The worker's result channel to the runner: one JSON line on stdout.
    sys.stdout.write(json.dumps(run(json.loads(sys.argv[1]))) + "\n")


if __name__ == "__main__":
    main()
