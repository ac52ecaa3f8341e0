"""A synthetic labeled RAG dataset with a known answer: fabricated responses add facts
(numbers, names) that the context does not hold; grounded ones restate the context."""

from __future__ import annotations

import random

from calibration.data import LabeledDataset, LabeledExample

CITIES = ["Ulmara", "Kestrel", "Variton", "Mossbay", "Quillon", "Dorvane", "Tallow", "Brisk"]
THINGS = ["bridge", "tower", "museum", "library", "harbour", "stadium"]
NAMES = ["Ada Brenner", "Tomas Vell", "Ilse Marrow", "Oren Quist", "Lena Sorrel"]


def synthetic_rag(n_sources: int = 40, per_source: int = 4, seed: int = 0) -> LabeledDataset:
    """``n_sources`` contexts, each with ``per_source`` responses (half fabricated)."""
    rng = random.Random(seed)
    examples = []
    for s in range(n_sources):
        city, thing = rng.choice(CITIES), rng.choice(THINGS)
        year, height = rng.randint(1800, 1990), rng.randint(20, 400)
        architect = rng.choice(NAMES)
        context = (
            f"The {thing} of {city} was designed by {architect} and opened in {year}. "
            f"It is {height} metres long and is the best known landmark of the city."
        )
        question = f"Tell me about the {thing} of {city}."
        for r in range(per_source):
            fabricated = r % 2 == 1
            spans = []
            if fabricated:
                other = rng.choice([n for n in NAMES if n != architect])
                response = (
                    f"The {thing} of {city} was designed by {other} in {year + rng.randint(3, 60)}"
                    f" and cost {rng.randint(2, 90)} million dollars."
                )
                cost = response.index(" and cost")  # what the context does not hold
                spans = [
                    {"start": response.index(other), "end": cost, "risk": "fabrication"},
                    {"start": cost + 1, "end": len(response) - 1, "risk": "fabrication"},
                ]
            else:
                response = rng.choice(
                    [
                        f"The {thing} of {city} opened in {year} and is {height} metres long.",
                        f"It was designed by {architect} and opened in {year}.",
                        f"The {thing} is {height} metres long; {architect} designed it.",
                    ]
                )
            examples.append(
                LabeledExample(
                    id=f"s{s}-r{r}",
                    question=question,
                    contexts=[context],
                    response=response,
                    labels={"fabrication": int(fabricated)},
                    spans=spans,
                    group=f"s{s}",
                    meta={"task_type": "QA" if s % 2 else "Summary"},
                )
            )
    return LabeledDataset(tuple(examples), source="synthetic", format="jsonl")
