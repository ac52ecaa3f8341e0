"""``scope-guard features`` shows a self-trained SAE's top-activating contexts."""

from __future__ import annotations

import json
import shutil

import pytest

from scope_guard.cli.main import main
from scope_guard.errors import ArtifactError
from scope_guard.sae.training.explain import EXPLANATIONS_FILE, load_explanations


def _sae_with_explanations(tmp_path, latents):
    from scope_guard.stand_in import miniature_sae_path

    folder = tmp_path / "sae"
    shutil.copytree(miniature_sae_path(), folder)
    context = {"activation": 2.5, "doc": 0, "position": 3, "before": "the old ", "after": " of"}
    data = {"latents": {str(i): [{**context, "token": f"tok{i}"}] for i in latents}}
    (folder / EXPLANATIONS_FILE).write_text(json.dumps(data))
    return folder


def test_features_show_top_contexts(tmp_path, capsys):
    folder = _sae_with_explanations(tmp_path, range(512))
    argv = ["features", "--miniature", "--sae", str(folder), "--prompt", "Q", "--json"]
    assert main([*argv, "--response", "The river tower opened in 1901."]) == 0
    overall = json.loads(capsys.readouterr().out)["overall"]
    assert overall
    for entry in overall:
        assert entry["contexts"] == [f"the old [[tok{entry['latent']}]] of"]


@pytest.mark.parametrize("content", ['{"latents": [1, 2]}', "[" * 10_000, "{not json"])
def test_malformed_explanations_are_an_artifact_error(tmp_path, content):
    folder = tmp_path / "sae"
    folder.mkdir()
    (folder / EXPLANATIONS_FILE).write_text(content)
    with pytest.raises(ArtifactError, match="explanations"):
        load_explanations(folder)


def test_an_explanations_symlink_out_of_the_folder_is_refused(tmp_path):
    folder = tmp_path / "sae"
    folder.mkdir()
    outside = tmp_path / "secret.json"
    outside.write_text('{"latents": {}}')
    (folder / EXPLANATIONS_FILE).symlink_to(outside)
    with pytest.raises(ArtifactError):
        load_explanations(folder)
