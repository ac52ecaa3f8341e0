"""The RAGTruth benchmarks' seeded sample of source groups: whole groups, fixed by the seed."""

from __future__ import annotations

import pytest
from synthetic_rag import synthetic_rag

from benchmarks.fabrication.extract_ragtruth import sample_groups


def test_whole_groups_fixed_by_the_seed():
    data = synthetic_rag(n_sources=10, per_source=3)
    first = sample_groups(data, 4, seed=7)
    assert len(first) == 12  # every response of each drawn source
    drawn = set(first.groups().tolist())
    assert len(drawn) == 4
    assert list(sample_groups(data, 4, seed=7).groups()) == list(first.groups())
    others = {frozenset(sample_groups(data, 4, seed=s).groups().tolist()) for s in range(8)}
    assert len(others) > 1
    keys = [e.response for e in data if e.group_key in drawn]
    assert [e.response for e in first] == keys  # the dataset's order is kept
    assert sample_groups(data, None, seed=0) is data


@pytest.mark.parametrize("n", [0, 11])
def test_a_sample_size_outside_the_groups_is_refused(n):
    with pytest.raises(SystemExit, match="--groups"):
        sample_groups(synthetic_rag(n_sources=10, per_source=1), n, seed=0)
