"""Hostile checkpoints and text: custom code, looping chat templates, lone surrogates."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.reader import ExchangeEncoder, Reader

LOOPING_TEMPLATE = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}"
    "{% endfor %}{% endfor %}{% endfor %}{{ messages[0]['content'] }}"
)
FLOODING_TEMPLATE = (
    "{% for a in range(100000) %}{% for b in range(100) %}xxxxxxxxxx{% endfor %}{% endfor %}"
    "{{ messages[0]['content'] }}{{ messages[1]['content'] }}"
)


@pytest.fixture
def model_copy(miniature_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(miniature_dir, folder)
    return folder


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json"])
def test_auto_map_folders_are_refused_before_transformers_sees_them(model_copy, file):
    _edit_json(model_copy / file, auto_map={"AutoModel": "evil.EvilModel"})
    (model_copy / "marker").write_text("")
    with pytest.raises(ArtifactError, match="auto_map"):
        Reader.from_pretrained(model_copy, ["resid_post@1"])


def test_folders_shipping_python_code_are_refused(model_copy):
    (model_copy / "evil.py").write_text("raise SystemExit('ran custom code')\n")
    with pytest.raises(ArtifactError, match="ships Python code"):
        Reader.from_pretrained(model_copy, ["resid_post@1"])


@pytest.mark.parametrize("config", ["[1, 2]", "[" * 100_000, "{not json"])
def test_malformed_config_is_an_artifact_error(model_copy, config):
    (model_copy / "config.json").write_text(config)
    with pytest.raises(ArtifactError, match=r"config\.json"):
        Reader.from_pretrained(model_copy, ["resid_post@1"])


POWER_TEMPLATE = "{% set x = 10 ** 100000000 %}{{ messages[0]['content'] }}"
HUGE_STRING_TEMPLATE = "{% set x = 'x' * 10 ** 10 %}{{ messages[0]['content'] }}"
HUGE_FILTER_TEMPLATE = "{{ 'x' | center(2000000000) }}{{ messages[0]['content'] }}"


@pytest.mark.parametrize(
    "template",
    [
        LOOPING_TEMPLATE,
        FLOODING_TEMPLATE,
        POWER_TEMPLATE,
        HUGE_STRING_TEMPLATE,
        HUGE_FILTER_TEMPLATE,
    ],
)
def test_unbounded_chat_templates_are_refused_quickly(miniature_dir, template):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(miniature_dir)
    tokenizer.chat_template = template
    started = time.monotonic()
    with pytest.raises(ConfigError, match="chat template"):
        ExchangeEncoder(tokenizer, max_tokens=256)
    assert time.monotonic() - started < 60


def test_lone_surrogates_are_read_not_refused(miniature_dir):
    reader = Reader.miniature(["resid_post@1"])
    response = "A ticket costs 7.20 euros.\ud800"
    reading = reader.read("How much is a ticket?\udfff", response)
    assert reading.n_tokens > 0
    assert len(reading.response) == len(response)
    assert reading.response.endswith("\ufffd")
    pairs = zip(reading.offsets, reading.tokens, strict=True)
    assert all(reading.response[a:b] == t for (a, b), t in pairs)
    clean = reader.read("How much is a ticket?\ufffd", "A ticket costs 7.20 euros.\ufffd")
    assert clean.token_ids == reading.token_ids
