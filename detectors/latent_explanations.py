"""Latent explanations inside a detector bundle: each kept SAE latent's top-activating contexts.

A self-trained SAE has no Neuronpedia pages; its top-activating contexts in the training corpus
(``explanations.json`` beside the SAE, :mod:`scope_guard.sae.training.explain`) explain a latent
instead. Calibration copies the few strongest contexts of each latent a probe kept into the
bundle, so a live :class:`~detectors.probe.ProbeScore` and the calibration report can show why
a latent pushed the score, without the SAE folder.

In a bundle they are the file ``explanations.json``::

    {"format": "scope-guard-latent-explanations", "version": 1,
     "detectors": {"fabrication": {"resid_post@9": {"1234": ["the old [[bridge]] of", ...]}}}}

listed and hashed in the manifest like every bundle file and read as hostile: bounded in bytes,
contexts per latent and characters per context, and every latent must be one its detector's
SAE block at that site keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from detectors.feature_blocks import BlockKind, FeatureBlock
from scope_guard.errors import ArtifactError, ConfigError

__all__ = [
    "EXPLANATIONS_FILE",
    "MAX_CONTEXTS",
    "MAX_CONTEXT_CHARS",
    "MAX_EXPLANATIONS_BYTES",
    "LatentExplanations",
    "check_explanations",
    "explanations_json",
    "parse_explanations",
    "rendered_contexts",
]

EXPLANATIONS_FILE = "explanations.json"
MAX_CONTEXTS = 3
"""Contexts kept per latent: the strongest few say what a latent is about; more is noise."""
MAX_CONTEXT_CHARS = 200
"""Characters of one rendered context (``before [[token]] after``), the token always kept."""
MAX_EXPLANATIONS_BYTES = 32 * 1024 * 1024
"""Largest explanations file read (each latent of a 16k-wide SAE at the bounds: ~10 MiB)."""
_MARKER = "[[{}]]"

LatentExplanations = Mapping[str, Mapping[int, tuple[str, ...]]]
"""Per SAE site (``"resid_post@9"``), per latent id, its rendered top contexts, strongest first."""


class ContextLike(Protocol):
    """What :func:`rendered_contexts` reads of a context (a ``LatentContext`` of the trainer)."""

    @property
    def before(self) -> str: ...
    @property
    def token(self) -> str: ...
    @property
    def after(self) -> str: ...


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_context(context: ContextLike, max_chars: int = MAX_CONTEXT_CHARS) -> str:
    """``before [[token]] after`` on one line, cut to ``max_chars`` around the token.

    Whitespace runs become one space; a space at a token boundary (``"the old "`` before, or a
    token that decodes as ``" bridge"``) stays outside the marker. The marked token always
    stays (itself cut if it alone is too long); the room left is shared between the text
    before (kept from its end) and after (kept from its start).
    """
    raw_token = context.token
    token = _one_line(raw_token)[: max(1, max_chars - len(_MARKER.format("")))]
    marked = _MARKER.format(token)
    before, after = _one_line(context.before), _one_line(context.after)
    if before and (context.before[-1:].isspace() or raw_token[:1].isspace()):
        before += " "
    if after and (context.after[:1].isspace() or raw_token[-1:].isspace()):
        after = " " + after
    room = max(0, max_chars - len(marked))
    if len(before) + len(after) > room:
        keep_after = min(len(after), max(room // 2, room - len(before)))
        keep_before = room - keep_after
        before = before[len(before) - keep_before :].lstrip() if keep_before > 0 else ""
        after = after[:keep_after].rstrip()
    return before + marked + after


def rendered_contexts(contexts: Sequence[ContextLike], k: int = MAX_CONTEXTS) -> tuple[str, ...]:
    """The first ``k`` contexts (strongest first, as saved), rendered for a bundle."""
    return tuple(render_context(c) for c in contexts[: min(k, MAX_CONTEXTS)])


def check_explanations(
    detector: str, explanations: LatentExplanations, blocks: Iterable[FeatureBlock]
) -> None:
    """Refuse explanations a detector cannot hold.

    Raises:
        ConfigError: a site without an SAE block, a latent the block does not keep, more than
            :data:`MAX_CONTEXTS` contexts, or a context that is not a string of at most
            :data:`MAX_CONTEXT_CHARS` characters.
    """
    kept = {str(b.site): set(b.latent_ids) for b in blocks if b.kind is BlockKind.SAE}
    for site, latents in explanations.items():
        if site not in kept:
            msg = (
                f"detector {detector!r}: explanations for {site!r}, where it has no SAE block "
                f"(its SAE sites: {', '.join(kept) or 'none'})"
            )
            raise ConfigError(msg)
        for latent, contexts in latents.items():
            if latent not in kept[site]:
                msg = f"detector {detector!r}: explanations for latent {latent!r} at {site}, "
                msg += "which its SAE block does not keep"
                raise ConfigError(msg)
            if len(contexts) > MAX_CONTEXTS:
                msg = (
                    f"detector {detector!r}: latent {latent} at {site} has {len(contexts)} "
                    f"contexts, more than the {MAX_CONTEXTS} allowed"
                )
                raise ConfigError(msg)
            for text in contexts:
                if not isinstance(text, str) or len(text) > MAX_CONTEXT_CHARS:
                    msg = (
                        f"detector {detector!r}: a context of latent {latent} at {site} is not "
                        f"a string of at most {MAX_CONTEXT_CHARS} characters"
                    )
                    raise ConfigError(msg)


_Context = Annotated[str, StringConstraints(max_length=MAX_CONTEXT_CHARS)]


class _ExplanationsFile(BaseModel):
    """The schema of a bundle's ``explanations.json`` (strict: no coercion but latent keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    format: Literal["scope-guard-latent-explanations"]
    version: Literal[1]
    detectors: dict[
        str, dict[str, dict[str, Annotated[list[_Context], Field(max_length=MAX_CONTEXTS)]]]
    ]


def explanations_json(explanations: Mapping[str, LatentExplanations]) -> bytes | None:
    """The bundle file of per-detector explanations; ``None`` when no detector has any."""
    body = {
        name: {
            site: {str(latent): list(contexts) for latent, contexts in sorted(latents.items())}
            for site, latents in per_site.items()
            if latents
        }
        for name, per_site in explanations.items()
    }
    body = {name: sites for name, sites in body.items() if sites}
    if not body:
        return None
    data = _ExplanationsFile(format="scope-guard-latent-explanations", version=1, detectors=body)
    return data.model_dump_json(indent=1).encode("utf-8")


def parse_explanations(
    data: bytes, *, where: str
) -> dict[str, dict[str, dict[int, tuple[str, ...]]]]:
    """Per detector name, its explanations, from a bundle file's bytes.

    Only the schema is checked here (at most :data:`MAX_CONTEXTS` strings of at most
    :data:`MAX_CONTEXT_CHARS` characters per latent); whether the latents are the detector's
    own is :func:`check_explanations`' business, with the detector's blocks.

    Raises:
        ArtifactError: not UTF-8 JSON of the schema, too deep, or a latent key that is not a
            non-negative integer.
    """
    try:
        parsed = _ExplanationsFile.model_validate_json(data)
    except ValidationError as exc:
        msg = f"bundle file {where} is not valid latent explanations: {str(exc)[:300]}"
        raise ArtifactError(msg) from exc
    out: dict[str, dict[str, dict[int, tuple[str, ...]]]] = {}
    for name, per_site in parsed.detectors.items():
        out[name] = {}
        for site, latents in per_site.items():
            bad = [k for k in latents if not (k.isascii() and k.isdigit() and len(k) <= 12)]
            if bad:
                msg = f"bundle file {where}: latent ids {bad[:3]!r} at {site!r} are not integers"
                raise ArtifactError(msg)
            out[name][site] = {int(k): tuple(v) for k, v in latents.items()}
    return out
