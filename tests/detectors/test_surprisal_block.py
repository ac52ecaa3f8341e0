"""The ``surprisal`` feature block: its columns by hand, its checks, and scoring from a reading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from detectors.feature_blocks import (
    BlockKind,
    FeatureBlock,
    assemble,
    layout_names,
    surprisal_block,
)
from detectors.surprisal_pooling import (
    DEFAULT_THRESHOLDS,
    MAX_THRESHOLDS,
    SURPRISAL_VERSION,
    surprisal_columns,
    surprisal_token_rows,
)
from scope_guard.errors import ConfigError
from scope_guard.reader import Reader

S = np.array([1.0, 3.0, 6.0, 0.5, 12.0, 2.5])
H = np.array([2.0, 2.0, 4.0, 1.0, 3.0, 0.0])
PROMPT = "Context: the bridge opened in 1901. Question: when did it open?"
RESPONSE = "It opened in 1901, according to the passage."


def test_columns_by_hand():
    got = surprisal_columns(S, H, (2.0, 5.0, 10.0))
    # mean, max, top-5 mean (12, 6, 3, 2.5, 1), shares above 2 / 5 / 10, mean entropy
    expected = [25.0 / 6, 12.0, 24.5 / 5, 4 / 6, 2 / 6, 1 / 6, 2.0]
    np.testing.assert_allclose(got, expected)
    short = surprisal_columns(S[:2], H[:2], (2.0,))  # fewer than 5 tokens: top-5 is all
    np.testing.assert_allclose(short, [2.0, 3.0, 2.0, 0.5, 2.0])
    np.testing.assert_array_equal(surprisal_columns(S[:0], H[:0], (2.0,)), np.zeros(5))
    with pytest.raises(ValueError, match="surprisal values"):
        surprisal_columns(S, H[:3], (2.0,))


def test_per_token_rows_stand_for_the_whole():
    rows = surprisal_token_rows(S, H, (2.0, 5.0))
    assert rows.shape == (6, 6)
    np.testing.assert_array_equal(rows[4], [12.0, 12.0, 12.0, 1.0, 1.0, 3.0])
    np.testing.assert_array_equal(rows[3], [0.5, 0.5, 0.5, 0.0, 0.0, 1.0])
    assert surprisal_token_rows(S[:0], H[:0], (2.0,)).shape == (0, 5)


def test_the_default_block():
    block = surprisal_block()
    assert block.kind is BlockKind.SURPRISAL
    assert block.thresholds == list(DEFAULT_THRESHOLDS)
    assert block.width == 4 + len(DEFAULT_THRESHOLDS)
    assert layout_names([block]) == [
        "surprisal/mean",
        "surprisal/max",
        "surprisal/top5_mean",
        "surprisal/frac_above_2",
        "surprisal/frac_above_5",
        "surprisal/frac_above_10",
        "surprisal/entropy_mean",
    ]
    again = FeatureBlock.model_validate_json(block.model_dump_json())
    assert again == block


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"site": "resid_post@3"}, "no site"),
        ({"version": None}, "version"),
        ({"version": SURPRISAL_VERSION + 1}, "version"),
        ({"thresholds": []}, "1 to"),
        ({"thresholds": [float(t) for t in range(1, MAX_THRESHOLDS + 2)]}, "1 to"),
        ({"thresholds": [2.0, math.nan]}, "finite"),
        ({"thresholds": [2.0, math.inf]}, "finite"),
        ({"thresholds": [0.0, 2.0]}, "positive"),
        ({"thresholds": [-1.0, 2.0]}, "positive"),
        ({"thresholds": [5.0, 2.0]}, "increasing"),
        ({"thresholds": [2.0, 2.0]}, "increasing"),
    ],
)
def test_hostile_block_metadata_is_refused(change, match):
    data = {**surprisal_block().model_dump(mode="json"), **change}
    with pytest.raises(ValidationError, match=match):
        FeatureBlock.model_validate(data)


@pytest.fixture(scope="module")
def reader():
    return Reader.miniature(["resid_post@2"], surprisal=True)


def test_assemble_from_a_reading(reader):
    reading = reader.read(PROMPT, RESPONSE)
    values = reading.token_surprisal()
    block = surprisal_block([1.0, 4.0])
    row = assemble([block], reading=reading)
    assert row.shape == (1, 6)
    s, h = values.surprisal.double().numpy(), values.entropy.double().numpy()
    np.testing.assert_allclose(
        row[0],
        [
            s.mean(),
            s.max(),
            np.sort(s)[-5:].mean(),
            *((s > t).mean() for t in (1.0, 4.0)),
            h.mean(),
        ],
    )
    per_token = assemble([block], reading=reading, per_token=True)
    assert per_token.shape == (reading.n_tokens, 6)
    np.testing.assert_allclose(per_token[:, 0], s)


def test_a_reading_without_surprisal_is_refused(miniature_dir):
    plain = Reader.from_pretrained(miniature_dir, ["resid_post@2"], dtype="float32")
    with pytest.raises(ConfigError, match="surprisal=True"):
        assemble([surprisal_block()], reading=plain.read(PROMPT, RESPONSE))
    with pytest.raises(ConfigError, match="needs a reading"):
        assemble([surprisal_block()])


def test_values_that_do_not_match_the_tokens_are_refused(reader):
    from dataclasses import replace

    from scope_guard.reader.surprisal import TokenSurprisal

    reading = reader.read(PROMPT, RESPONSE)
    short = replace(reading, surprisal=TokenSurprisal(torch.zeros(1), torch.zeros(1)))
    with pytest.raises(ConfigError, match="surprisal values"):
        assemble([surprisal_block()], reading=short)
