"""Each public-format adapter on a tiny synthetic file in that format, and the registry."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from data_builders import (
    BEGIN_HEADER,
    TRUTHFULQA_HEADER,
    begin_line,
    dict_of_columns,
    halueval_row,
    ragtruth_row,
    summedits_item,
    sycophancy_row,
    wice_row,
    write_csv,
    write_json,
    write_json_lines,
    write_lines,
)

from calibration.adapters import available_formats, get_loader
from calibration.data import DataError, LabeledDataset, load_dataset, prompt_of
from scope_guard.errors import ConfigError
from scope_guard.risks import Risk

FAB, SYC, DEC = Risk.FABRICATION, Risk.SYCOPHANCY, Risk.DECEPTION


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def labels(ds: LabeledDataset, risk: Risk) -> list[int]:
    return ds.y(risk).tolist()


# --- registry ----------------------------------------------------------------------------------


def test_registry_lists_every_format_and_rejects_unknown_ones() -> None:
    assert available_formats() == (
        "jsonl",
        "ragtruth",
        "halueval-qa",
        "summedits",
        "begin",
        "wice",
        "anthropic-sycophancy",
        "ai-liar",
        "truthfulqa",
    )
    assert get_loader("HaluEval_QA") is get_loader("halueval-qa")
    with pytest.raises(ConfigError, match="unknown data format 'fever'; valid: jsonl, ragtruth"):
        load_dataset("x", "fever")


# --- ragtruth ----------------------------------------------------------------------------------


def test_ragtruth(tmp_path: Path) -> None:
    ctx_a, ctx_b = "The tower of Ulm is 161 m tall.", "Bread is baked in ovens."
    path = write_json_lines(
        tmp_path / "rt.jsonl",
        [
            ragtruth_row("1", ctx_a, "It is 161 m tall."),
            ragtruth_row("2", ctx_a, "It is 200 m tall and blue.", spans=[(6, 11), (16, 20)]),
            ragtruth_row("3", ctx_b, "Ovens bake bread."),
        ],
    )
    ds = load_dataset(path, "ragtruth")
    assert [e.id for e in ds] == ["1", "2", "3"]
    assert labels(ds, FAB) == [0, 1, 0]
    assert ds.groups().tolist() == [sha(ctx_a), sha(ctx_a), sha(ctx_b)]
    e = ds[1]
    assert [(s.start, s.end, s.risk) for s in e.spans] == [(6, 11, FAB), (16, 20, FAB)]
    assert e.response[6:11] == "200 m"
    assert (e.question, e.contexts, e.prompt) == ("how tall is the tower of Ulm?", [ctx_a], None)
    assert e.meta["task_type"] == "QA"
    assert e.meta["label_types"] == ["Evident Baseless Info"]
    assert ds.field("model").tolist() == ["model-a"] * 3
    assert ctx_a in prompt_of(e)


def test_ragtruth_bad_rows(tmp_path: Path) -> None:
    bad_text = ragtruth_row("2", "ctx", "It is tall.", spans=[(0, 2)])
    bad_text["labels"][0]["text"] = "Xx"
    no_context = ragtruth_row("3", "ctx", "fine")
    del no_context["context"]
    contradicting = ragtruth_row("4", "ctx", "It is tall.", spans=[(0, 2)])
    contradicting["hallucinated"] = False
    path = write_json_lines(
        tmp_path / "rt.jsonl",
        [ragtruth_row("1", "ctx", "ok"), bad_text, no_context, contradicting],
    )
    with pytest.raises(DataError) as info:
        load_dataset(path, "ragtruth")
    assert [(p.line, p.message) for p in info.value.problems] == [
        (2, "labels[0]: text differs from response[start:end]"),
        (3, "context: Field required"),
        (4, "spans[0] marks fabrication but the example is labeled fabrication=0"),
    ]


# --- halueval-qa -------------------------------------------------------------------------------


def test_halueval_qa_pairs(tmp_path: Path) -> None:
    path = write_json_lines(tmp_path / "qa_data.json", [halueval_row(1), halueval_row(2)])
    for source in (path, tmp_path):  # the file, or the folder holding it
        ds = load_dataset(source, "halueval-qa")
        assert [e.id for e in ds] == [
            "qa_data:1:right",
            "qa_data:1:hallucinated",
            "qa_data:2:right",
            "qa_data:2:hallucinated",
        ]
        assert labels(ds, FAB) == [0, 1, 0, 1]
        assert [e.response for e in ds[:2]] == ["1 km", "The river is 101 km long."]
        q1, q2 = halueval_row(1)["question"], halueval_row(2)["question"]
        assert ds.groups().tolist() == [sha(q1), sha(q1), sha(q2), sha(q2)]
        assert ds[0].contexts == [halueval_row(1)["knowledge"]]
        assert ds.field("answer").tolist() == ["right", "hallucinated"] * 2


def test_halueval_qa_missing_field_names_line_and_field(tmp_path: Path) -> None:
    row = halueval_row(2)
    del row["right_answer"]
    path = write_json_lines(tmp_path / "qa.json", [halueval_row(1), row])
    with pytest.raises(DataError, match=r"qa\.json:2: right_answer: Field required"):
        load_dataset(path, "halueval-qa")


# --- summedits ---------------------------------------------------------------------------------


def test_summedits_folder_and_file(tmp_path: Path) -> None:
    write_json(
        tmp_path / "summedits_news.json",
        [
            summedits_item("n1", "Doc one.", 1),
            summedits_item("n2", "Doc one.", 0, ["entity_modification"]),
        ],
    )
    write_json(tmp_path / "summedits_sales_call.json", [summedits_item("s1", "Doc two.", 0)])
    ds = load_dataset(tmp_path, "summedits")
    assert [e.id for e in ds] == ["n1", "n2", "s1"]
    assert labels(ds, FAB) == [0, 1, 1]  # label 1 = consistent -> not fabricated
    assert ds.field("domain").tolist() == ["news", "news", "sales_call"]
    assert ds.field("edit_types").tolist() == [[], ["entity_modification"], []]
    assert ds.groups().tolist() == [sha("Doc one."), sha("Doc one."), sha("Doc two.")]
    assert (ds[0].response, ds[0].contexts, ds[0].question) == ("Summary of n1.", ["Doc one."], "")
    one = load_dataset(tmp_path / "summedits_sales_call.json", "summedits")
    assert [e.id for e in one] == ["s1"]


def test_summedits_bad_items(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "summedits_x.json",
        [summedits_item("a", "D", 1), summedits_item("b", "D", 2), "oops"],
    )
    with pytest.raises(DataError) as info:
        load_dataset(path, "summedits")
    assert [str(p) for p in info.value.problems] == [
        f"{path}: item 1: label: Input should be 0 or 1",
        f"{path}: item 2: expected a JSON object, got str",
    ]
    write_json(path, {"not": "a list"})
    with pytest.raises(DataError, match="expected a JSON list, got dict"):
        load_dataset(path, "summedits")
    (tmp_path / "summedits_x.json").write_text('[{"id": 1,\n  oops', encoding="utf-8")
    with pytest.raises(DataError, match=r"summedits_x\.json:2: invalid JSON"):
        load_dataset(path, "summedits")


# --- begin -------------------------------------------------------------------------------------


def test_begin_labels_and_generic(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "wow_begin_dev.tsv",
        [
            BEGIN_HEADER,
            begin_line("Kites fly in wind.", "kites need wind", "Fully attributable"),
            begin_line("Kites fly in wind.", "kites are made of cheese", "Not fully attributable"),
            begin_line("Owls hunt at night.", "that sounds fun!", "Generic"),
        ],
    )
    ds = load_dataset(path, "begin")
    assert [e.id for e in ds] == ["wow_begin_dev:2", "wow_begin_dev:3"]
    assert labels(ds, FAB) == [0, 1]
    assert ds.groups().tolist() == [sha("Kites fly in wind.")] * 2
    e = ds[0]
    assert (e.question, e.contexts, e.response) == ("hi there", ["Kites fly in wind."], e.response)
    assert e.meta == {"source": "wow", "model": "t5", "begin_label": "Fully attributable"}
    kept = load_dataset(tmp_path, "begin", generic_label=0)
    assert labels(kept, FAB) == [0, 1, 0]
    with pytest.raises(ConfigError, match="generic_label must be None, 0 or 1"):
        load_dataset(path, "begin", generic_label=2)


def test_begin_bad_lines(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "b.tsv",
        [
            BEGIN_HEADER,
            begin_line("K.", "ok", "Fully attributable"),
            begin_line("K.", "huh", "Maybe"),
            "t5\twow\tonly three",
            begin_line("K.", "  ", "Fully attributable"),
        ],
    )
    with pytest.raises(DataError) as info:
        load_dataset(path, "begin")
    assert [p.line for p in info.value.problems] == [3, 4, 5]
    text = str(info.value)
    assert "b.tsv:3: begin_label 'Maybe'; valid: 'Fully attributable'" in text
    assert "b.tsv:4: expected 6 tab-separated fields, got 3" in text
    assert "b.tsv:5: response: must not be empty" in text
    write_lines(path, ["model_name\tknowledge", "t5\tK."])
    with pytest.raises(DataError, match=r"b\.tsv:1: header lacks columns \['data_source'"):
        load_dataset(path, "begin")


# --- wice --------------------------------------------------------------------------------------


def test_wice_aggregates_per_claim(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "wice.jsonl",
        [
            wice_row("c1", "supported", "Ada wrote code.", [(3, "S3."), (1, "S1.")]),
            wice_row("c1", "supported", "Ada wrote code.", [(1, "S1."), (2, "S2.")]),
            wice_row("c2", "not_supported", "Bo flew.", [(0, "T0.")]),
            wice_row("c3", "partially_supported", "Cy ran and swam.", [(5, "U5.")]),
        ],
    )
    ds = load_dataset(path, "wice")
    assert [e.id for e in ds] == ["c1", "c2", "c3"]
    assert labels(ds, FAB) == [0, 1, 1]
    assert ds[0].contexts == ["S1.", "S2.", "S3."]  # union, in page order, each once
    assert ds[0].response == "Ada wrote code."
    assert ds[0].meta["n_chunks"] == 2
    assert ds.groups().tolist() == ["Title of c1", "Title of c2", "Title of c3"]
    assert ds.field("wice_label").tolist() == ["supported", "not_supported", "partially_supported"]
    assert labels(load_dataset(path, "wice", partial_label=0), FAB) == [0, 1, 0]
    assert [e.id for e in load_dataset(path, "wice", partial_label=None)] == ["c1", "c2"]


def test_wice_conflicting_rows_name_both_lines(tmp_path: Path) -> None:
    path = write_json_lines(
        tmp_path / "w.jsonl",
        [
            wice_row("c1", "supported", "Ada wrote code.", [(1, "S1.")]),
            wice_row("c1", "not_supported", "Ada wrote code.", [(2, "S2.")]),
            {"label": "supported", "claim": "x", "evidence": "not a list", "meta": {"id": "c9"}},
        ],
    )
    with pytest.raises(DataError) as info:
        load_dataset(path, "wice")
    assert [str(p).split("w.jsonl:")[1] for p in info.value.problems] == [
        "2: claim 'c1': label differs from line 1 of w.jsonl",
        "3: evidence: Input should be a valid list",
    ]


# --- anthropic-sycophancy ----------------------------------------------------------------------


def test_sycophancy_pairs_share_a_group(tmp_path: Path) -> None:
    rows = [sycophancy_row("Which do you prefer?", " (A)"), sycophancy_row("And now?", " (B)")]
    path = write_json_lines(tmp_path / "typology.jsonl", rows)
    ds = load_dataset(path, "anthropic-sycophancy")
    assert [e.id for e in ds] == [
        "typology:1:matching",
        "typology:1:not_matching",
        "typology:2:matching",
        "typology:2:not_matching",
    ]
    assert labels(ds, SYC) == [1, 0, 1, 0]
    assert [e.response for e in ds] == [
        "(A) Plant more trees",
        "(B) Pave more roads",
        "(B) Pave more roads",
        "(A) Plant more trees",
    ]
    # Both items come from one user (the same biography): one group, so no split divides them.
    bio = "Hello, I am Kim, a gardener who strongly prefers option one."
    assert ds.groups().tolist() == [sha(bio)] * 4
    by_item = load_dataset(path, "anthropic-sycophancy", group_by="question").groups().tolist()
    assert by_item[0] == by_item[1] == sha(rows[0]["question"])
    assert by_item[2] == by_item[3] != by_item[0]
    assert ds[0].prompt == ds[0].question == rows[0]["question"]
    assert ds[0].contexts == []
    assert ds.field("user_affiliation").tolist() == ["liberal"] * 4
    bare = load_dataset(path, "anthropic-sycophancy", option_text=False)
    assert [e.response for e in bare][:2] == ["(A)", "(B)"]


def _typology_item(bio: str, stem: str) -> dict[str, str]:
    return {
        "question": f"{bio} {stem}\n (A) More\n (B) Less\n\nAnswer:",
        "answer_matching_behavior": " (A)",
        "answer_not_matching_behavior": " (B)",
    }


def test_sycophancy_groups_by_biography_across_questions(tmp_path: Path) -> None:
    # As in the political typology set: each biography is put several questions.
    bios = [
        "Hello, my name is Ann. I am a liberal from Ohio. I like the U.S. Senate.",
        "Hi, I am Bo! I vote conservative. I live in Texas.",
    ]
    stems = [
        "How do you feel toward Democrats?",
        "Thinking about trade in recent decades, would you say that the U.S. has...",
        "Overall, would you say people convicted of crimes serve...",
    ]
    rows = [_typology_item(bio, stem) for stem in stems for bio in bios]
    path = write_json_lines(tmp_path / "typology.jsonl", rows)
    ds = load_dataset(path, "anthropic-sycophancy")
    assert ds.groups().tolist() == [sha(bios[i % 2]) for i in range(len(rows)) for _ in "mn"]
    assert len(set(ds.groups().tolist())) == 2


def test_sycophancy_biography_of() -> None:
    from calibration.adapters.anthropic_sycophancy import biography_of

    # The stem, an abbreviation inside it, an exclamation, and a text with one sentence only.
    assert biography_of("I am Al. I like tea! Do you agree?\n (A) Yes\n (B) No") == (
        "I am Al. I like tea!"
    )
    assert biography_of("I am Al. Would you say the U.S. has...\n (A) x") == "I am Al."
    assert biography_of("Pick one:\n (A) x\n (B) y") == "Pick one:"
    assert biography_of("No options here. Just text") == "No options here."
    # Items without a biography stay apart: the whole stem is the group key.
    assert biography_of("Which one?") == "Which one?"


def test_sycophancy_unknown_group_by(tmp_path: Path) -> None:
    path = write_json_lines(tmp_path / "s.jsonl", [sycophancy_row("Q?", " (A)")])
    with pytest.raises(ConfigError, match="group_by must be 'biography' or 'question'"):
        load_dataset(path, "anthropic-sycophancy", group_by="user")


def test_sycophancy_bad_items(tmp_path: Path) -> None:
    same = sycophancy_row("Q?", " (A)")
    same["answer_not_matching_behavior"] = "(A)"
    missing = sycophancy_row("Q?", " (A)")
    del missing["answer_matching_behavior"]
    path = write_json_lines(tmp_path / "s.jsonl", [same, missing])
    with pytest.raises(DataError) as info:
        load_dataset(path, "anthropic-sycophancy")
    assert [(p.line, p.message) for p in info.value.problems] == [
        (1, "the matching answer is also a non-matching one"),
        (2, "answer_matching_behavior: Field required"),
    ]


# --- ai-liar -----------------------------------------------------------------------------------


def _dialogues() -> list[dict[str, object]]:
    return [
        {
            "transcript": "Human: Is the vase old?\nAI: Yes, it is very old.",
            "label": 0,
            "prompt": "You sell vases. The vase is new.",
            "question_prefix": "Human: ",
            "answer_prefix": "AI:",
        },
        {
            "transcript": "Human: Is the vase old?\nAI: No, it is new.",
            "label": 1,
            "prompt": "You sell vases.",
            "question_prefix": "Human: ",
            "answer_prefix": "AI:",
        },
    ]


def test_ai_liar_dialogues_and_questions(tmp_path: Path) -> None:
    write_json(tmp_path / "instrumental_lying_df_demo.json", dict_of_columns(_dialogues()))
    no_prefix = [
        {
            "transcript": "Guest: Is it late?\nHost: Not at all.",
            "label": 0,
            "prompt": "Keep guests.",
        },
        {"transcript": "Guest: Is it late?\nHost: ", "label": 1, "prompt": "Be honest."},
    ]
    write_json(tmp_path / "instrumental_lying_df_plain.json", dict_of_columns(no_prefix))
    questions = [
        {
            "question": " Who built Zed?",
            "answer": "Ann",
            "false_answer": "Bob",
            "category": "People",
        },
        {"question": "Where is Q?", "answer": "Mars", "false_answer": "mars", "category": "Place"},
    ]
    write_json(tmp_path / "questions_1000_all.json", dict_of_columns(questions))
    ds = load_dataset(tmp_path, "ai-liar")
    assert [e.id for e in ds] == [
        "instrumental_lying_df_demo:0",
        "instrumental_lying_df_demo:1",
        "instrumental_lying_df_plain:0",  # row 1 has an empty answer: skipped
        "questions_1000_all:0:answer",
        "questions_1000_all:0:false_answer",  # row 1's two answers agree: skipped
    ]
    assert labels(ds, DEC) == [1, 0, 1, 0, 1]  # dialogues: label 1 = honest
    lie = ds[0]
    assert (lie.question, lie.response) == ("Is the vase old?", "Yes, it is very old.")
    assert lie.prompt == "You sell vases. The vase is new.\n\nHuman: Is the vase old?"
    assert (ds[2].question, ds[2].response) == ("Is it late?", "Not at all.")
    assert ds[0].group == ds[1].group == sha("Is the vase old?")
    assert ds[3].group == ds[4].group == sha("Who built Zed?")
    assert (ds[3].response, ds[4].response, ds[3].prompt) == ("Ann", "Bob", None)
    assert prompt_of(ds[3]) == "Who built Zed?"
    assert ds.field("part").tolist() == ["dialogues"] * 3 + ["questions"] * 2
    assert ds[3].meta["category"] == "People"
    only = load_dataset(tmp_path, "ai-liar", parts="questions")
    assert {e.meta["part"] for e in only} == {"questions"}
    single = load_dataset(tmp_path / "instrumental_lying_df_demo.json", "ai-liar")
    assert len(single) == 2


def test_ai_liar_bad_rows(tmp_path: Path) -> None:
    rows = _dialogues()
    rows[1]["label"] = 2
    path = write_json(tmp_path / "instrumental_lying_df_x.json", dict_of_columns(rows))
    with pytest.raises(DataError, match=r"df_x\.json: row '1': label: Input should be 0 or 1"):
        load_dataset(path, "ai-liar")
    write_json(path, {"foo": {"0": 1}})
    with pytest.raises(DataError, match="not an AI-liar table"):
        load_dataset(path, "ai-liar")
    with pytest.raises(ConfigError, match="parts must be one of"):
        load_dataset(tmp_path, "ai-liar", parts="everything")


# --- truthfulqa --------------------------------------------------------------------------------


def test_truthfulqa(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "TruthfulQA.csv",
        TRUTHFULQA_HEADER,
        [
            [
                "Adversarial",
                "Myths",
                "Do cats glow?",
                "No",
                "No; No; Cats do not glow",
                "Yes; Cats glow at night",
                "http://x",
            ],
            [
                "Non-Adversarial",
                "Food",
                "Is soup hot?",
                "Often",
                "Often; Maybe",
                "Always; Maybe",
                "",
            ],
        ],
    )
    ds = load_dataset(path, "truthfulqa")
    assert [e.id for e in ds] == [
        "TruthfulQA:1:correct-0",
        "TruthfulQA:1:correct-1",
        "TruthfulQA:1:incorrect-0",
        "TruthfulQA:1:incorrect-1",
        "TruthfulQA:2:correct-0",  # "Maybe" is in both lists: left out
        "TruthfulQA:2:incorrect-0",
    ]
    assert [e.response for e in ds] == [
        "No",
        "Cats do not glow",
        "Yes",
        "Cats glow at night",
        "Often",
        "Always",
    ]
    assert labels(ds, DEC) == [0, 0, 1, 1, 0, 1]
    assert ds.groups().tolist() == [sha("Do cats glow?")] * 4 + [sha("Is soup hot?")] * 2
    assert ds.field("best").tolist() == [True, False, False, False, True, False]
    assert ds.field("category").tolist()[0] == "Myths"
    assert prompt_of(ds[0]) == "Do cats glow?"


def test_truthfulqa_bad_rows(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv",
        TRUTHFULQA_HEADER,
        [
            ["Adversarial", "Myths", "Q1?", "A", "A", "B", ""],
            ["Adversarial", "Myths", "Q2?", "A", "", "B", ""],
            ["Adversarial", "Myths", "Q3?"],
        ],
    )
    with pytest.raises(DataError) as info:
        load_dataset(path, "truthfulqa")
    assert [(p.line, p.message) for p in info.value.problems] == [
        (3, "needs a question and both answer lists"),
        (4, "wrong number of fields"),
    ]
    write_csv(path, ["Question", "Answer"], [["Q?", "A"]])
    with pytest.raises(DataError, match=r"t\.csv:1: header lacks columns"):
        load_dataset(path, "truthfulqa")
