"""``scope-guard features``: the most active SAE latents of a response, per token and overall."""

from __future__ import annotations

import argparse
from typing import Any

from scope_guard.cli.console import emit_json, note, out, table

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "features",
        help="show the most active SAE latents of a response",
        description=(
            "Reads a (prompt, response) exchange with a Gemma reader, encodes the response "
            "tokens with a Gemma Scope JumpReLU SAE and prints the most active latents per token "
            "and over the whole response (with Neuronpedia links for registry SAEs)."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="reader: a local model folder or a hub id (google/gemma-2-2b)")
    src.add_argument(
        "--miniature",
        action="store_true",
        help="use the built-in stand-in reader and SAE (random weights: latents mean nothing)",
    )
    p.add_argument(
        "--sae",
        help="params.npz, a Gemma Scope 2 or SAELens folder, or a registry id "
        "(gemma-scope-2b-pt-res/layer_20/width_16k/canonical)",
    )
    p.add_argument("--site", help="hook site if the SAE does not record it (resid_post@20)")
    p.add_argument("--prompt", required=True, help="the user turn (question + retrieved context)")
    p.add_argument("--response", required=True, help="the model's answer")
    p.add_argument("--top-k", type=int, default=5, help="latents to show per token and overall")
    p.add_argument("--dtype", default="auto", help="reader dtype: auto, bfloat16, float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def _latent_url(neuronpedia_id: str | None, latent: int) -> str | None:
    return f"https://www.neuronpedia.org/{neuronpedia_id}/{latent}" if neuronpedia_id else None


def run(args: argparse.Namespace) -> int:
    import torch

    from scope_guard.errors import ConfigError
    from scope_guard.features import Pooling, encode_reading
    from scope_guard.reader import Reader
    from scope_guard.sae import load_sae
    from scope_guard.sites import Site

    if args.top_k < 1:
        msg = f"--top-k must be >= 1, got {args.top_k}"
        raise ConfigError(msg)
    if args.miniature:
        from scope_guard.stand_in import miniature_sae_path

        note("using the miniature stand-in reader and SAE: random weights, latents mean nothing")
        sae_source: Any = args.sae or miniature_sae_path()
    elif not args.sae:
        msg = "--sae is required with --model"
        raise ConfigError(msg)
    else:
        sae_source = args.sae
    sae = load_sae(sae_source)
    site = Site.parse(args.site) if args.site else sae.info.site
    if site is None:
        msg = f"the SAE {sae_source} does not record its hook site: pass --site (resid_post@20)"
        raise ConfigError(msg)
    if args.miniature:
        reader = Reader.miniature([site], max_tokens=args.max_tokens)
    else:
        reader = Reader.from_pretrained(
            args.model, [site], dtype=args.dtype, device=args.device, max_tokens=args.max_tokens
        )
    if sae.d_model != reader.site_dim(site):
        msg = (
            f"SAE width {sae.d_model} does not match the reader's {reader.site_dim(site)} at {site}"
        )
        raise ConfigError(msg)
    reading = reader.read(args.prompt, args.response)
    features = encode_reading(reading, {site: sae.to(reader.device)}, Pooling.MEAN_MAX)[site]
    codes, ids, k = features.codes, features.latent_ids, min(args.top_k, features.codes.shape[1])
    npid = sae.info.neuronpedia_id

    per_token: list[dict[str, Any]] = []
    for i, token in enumerate(reading.tokens):
        values, cols = torch.topk(codes[i], k) if codes.shape[0] else (codes[0:0, 0], codes[0:0, 0])
        active = [(int(ids[c]), float(v)) for v, c in zip(values, cols, strict=True) if v > 0]
        per_token.append({"token": token, "offset": list(reading.offsets[i]), "top": active})
    n = codes.shape[1]
    mean, peak = features.pooled.to_dense()[:n], features.pooled.to_dense()[n:]
    order = [int(c) for c in peak.argsort()[::-1][:k] if peak[c] > 0]
    overall: list[dict[str, Any]] = [
        {
            "latent": int(ids[c]),
            "max": float(peak[c]),
            "mean": float(mean[c]),
            "tokens_active": int((codes[:, c] > 0).sum()),
            "url": _latent_url(npid, int(ids[c])),
        }
        for c in order
    ]
    # A self-trained SAE has no Neuronpedia pages: its saved top-activating contexts explain it.
    contexts = _explanations(sae_source)
    for o in overall:
        o["contexts"] = [c.render() for c in contexts.get(o["latent"], [])[:3]]
    payload = {
        "reader": reader.name,
        "stand_in": reader.is_stand_in,
        "sae": str(sae.info.source),
        "site": str(site),
        "n_tokens": reading.n_tokens,
        "prompt_truncated": reading.prompt_truncated,
        "response_truncated": reading.response_truncated,
        "tokens": per_token,
        "overall": overall,
    }
    if args.json:
        emit_json(payload)
        return 0
    label = " [STAND-IN: random weights]" if reader.is_stand_in else ""
    out(f"reader: {reader.name}{label}")
    out(f"SAE: {payload['sae']} at {site}; {reading.n_tokens} response tokens")
    if reading.prompt_truncated or reading.response_truncated:
        out(f"truncated: prompt={reading.prompt_truncated} response={reading.response_truncated}")
    out("\nper token (latent:activation)")
    rows = [
        [repr(t["token"]), " ".join(f"{lat}:{val:.2f}" for lat, val in t["top"]) or "-"]
        for t in per_token
    ]
    out(table(["token", f"top {k} active latents"], rows))
    out("\noverall (by max activation)")
    rows = [
        [
            o["latent"],
            f"{o['max']:.3f}",
            f"{o['mean']:.3f}",
            o["tokens_active"],
            o["url"] or _short(o["contexts"][0] if o["contexts"] else "-"),
        ]
        for o in overall
    ]
    out(table(["latent", "max", "mean", "tokens", "neuronpedia / top context"], rows))
    return 0


def _explanations(source: Any) -> dict[int, Any]:
    """Top-activating contexts saved beside a local SAE (``{}`` for registry ids)."""
    from pathlib import Path

    from scope_guard.sae.training.explain import load_explanations

    path = Path(str(source))
    return load_explanations(path) if path.exists() else {}


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 4] + " ..."
