"""Trivial baselines: features a probe could separate the classes by without judging anything.

Each is a tiny feature matrix put through the same nested cross-validation as the probes, so a
probe figure that one of these reaches too is called out as a shortcut, not a detection.

- ``length``: the response's length (log characters, log words);
- ``letter``: which option letter the response picks (A/B sets: is "(A)" the sycophantic one?);
- ``prompt_length``: the prompt's length (AI-liar dialogues: the lying prompts add a goal);
- ``prompt_words``: the prompt's words (bag of words, the 200 most frequent): in AI-liar
  dialogues the lying prompt's incentive sentence alone could give the label away.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from calibration.data import LabeledDataset, prompt_of

__all__ = ["baselines"]

_LETTER = re.compile(r"^\s*\(([A-Z])\)")
_WORD = re.compile(r"[a-z']+")


def _length(texts: list[str]) -> np.ndarray:
    return np.array([[np.log1p(len(t)), np.log1p(len(t.split()))] for t in texts])


def _letters(texts: list[str]) -> np.ndarray | None:
    letters = [m.group(1) if (m := _LETTER.match(t)) else "" for t in texts]
    values = sorted(set(letters))
    if len(values) < 2 or "" in values:
        return None
    return np.array([[float(x == v) for v in values[1:]] for x in letters])


def _bag_of_words(texts: list[str], size: int = 200) -> np.ndarray:
    counts = Counter(w for t in texts for w in set(_WORD.findall(t.lower())))
    vocab = {w: i for i, (w, _) in enumerate(counts.most_common(size))}
    X = np.zeros((len(texts), len(vocab)))
    for row, t in enumerate(texts):
        for w in set(_WORD.findall(t.lower())):
            if w in vocab:
                X[row, vocab[w]] = 1.0
    return X


def baselines(dataset: LabeledDataset) -> dict[str, np.ndarray]:
    """The baselines that apply to ``dataset``, name -> features (rows aligned with it)."""
    responses = [ex.response for ex in dataset]
    prompts = [prompt_of(ex) for ex in dataset]
    out = {"length": _length(responses)}
    letters = _letters(responses)
    if letters is not None:
        out["letter"] = letters
    per_group: dict[str, set[str]] = {}
    for ex, prompt in zip(dataset, prompts, strict=True):
        per_group.setdefault(ex.group_key, set()).add(prompt)
    if any(len(v) > 1 for v in per_group.values()):  # prompts differ within a group
        out["prompt_length"] = _length(prompts)
        out["prompt_words"] = _bag_of_words(prompts)
    return out
