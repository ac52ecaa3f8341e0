"""The confined-file helpers every artifact loader reads through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scope_guard.errors import ArtifactError
from scope_guard.safe_files import (
    check_relative_name,
    confined_file,
    confinement_root,
    read_bounded,
    read_json_object,
)


@pytest.mark.parametrize("name", ["tensors.safetensors", "sub/file.bin", "a.b.c"])
def test_plain_relative_names_pass(name: str) -> None:
    assert check_relative_name(name, where="m.json") == name


@pytest.mark.parametrize(
    "name", ["", "../x", "/etc/passwd", "C:\\x", "a\\b", "a/./b", "a//b", "x/", "a\x00b", 7, None]
)
def test_names_that_could_leave_the_folder_are_refused(name: object) -> None:
    with pytest.raises(ArtifactError, match=r"m\.json"):
        check_relative_name(name, where="m.json")


def test_hf_cache_snapshot_root_is_the_repo_folder(tmp_path: Path) -> None:
    snap = tmp_path / "models--org--name" / "snapshots" / "abc" / "layer_1" / "w"
    snap.mkdir(parents=True)
    assert confinement_root(snap) == (tmp_path / "models--org--name").resolve()
    plain = tmp_path / "plain" / "snapshots" / "abc"
    plain.mkdir(parents=True)
    assert confinement_root(plain) == plain.resolve()  # not a models--* repo


def test_symlink_loop_is_an_artifact_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ArtifactError, match=r"cannot be resolved|missing"):
        confined_file(tmp_path / "a", root=tmp_path)


def test_read_bounded_refuses_a_file_over_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 11)
    assert read_bounded(path, max_bytes=11) == b"x" * 11
    with pytest.raises(ArtifactError, match="11 bytes, more than the 10"):
        read_bounded(path, max_bytes=10)


def test_read_bounded_does_not_block_on_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ArtifactError, match="a FIFO"):
        read_bounded(tmp_path / "fifo", max_bytes=10)  # opened non-blocking, then refused


def test_json_depth_limit_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('{"a": ' * 3 + "1" + "}" * 3)
    assert read_json_object(path, root=tmp_path, max_depth=3) == {"a": {"a": {"a": 1}}}
    with pytest.raises(ArtifactError, match="nests JSON more than 2"):
        read_json_object(path, root=tmp_path, max_depth=2)


def test_nan_literals_are_kept_for_callers_to_judge(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text('{"auc": NaN}')
    value = read_json_object(path, root=tmp_path)["auc"]
    assert value != value
