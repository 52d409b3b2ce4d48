"""`kiosk bench robustness`: the daemon's frame path under generated capture conditions, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiosk.face.conditions import CONDITIONS

ROBUSTNESS_KEYS = {"probes", "mated", "strangers", "detected", "rank1", "accepted_right", "accepted_wrong",
                   "refused", "tried", "ungated", "by_reason", "stranger_max_score"}
# Six LFW identities: three enrolled with one photo each (23 mated probes), three strangers (30 probes).
SUBSET = ("Ariel_Sharon", "Colin_Powell", "Hugo_Chavez", "Jacques_Chirac", "Laura_Bush", "Tony_Blair")


@pytest.fixture
def subset(face_data: Path, tmp_path: Path) -> Path:
    """Links to a few real identity folders (never copies)."""
    root = tmp_path / "subset"
    root.mkdir()
    for name in SUBSET:
        (root / name).symlink_to(face_data / name, target_is_directory=True)
    return root


def test_bench_robustness_json_on_a_subset(invoke, subset: Path) -> None:
    result = invoke("bench", "robustness", "--data", str(subset), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.splitlines()[-1])
    assert list(data["conditions"]) == list(CONDITIONS)
    assert data["enrolled"] == 3 and data["probe_photos_without_face"] == []
    for name, c in data["conditions"].items():
        assert set(c) == ROBUSTNESS_KEYS, name
        assert (c["probes"], c["mated"], c["strangers"]) == (53, 23, 30), name
        assert 0 <= c["accepted_right"] <= c["ungated"]["accepted_right"] <= c["rank1"] <= 1, (name, c)
        # Strangers are probed too, so a wrong accept is possible: there must be none, gated or not.
        assert c["accepted_wrong"] == 0 and c["ungated"]["accepted_wrong"] == 0, (name, c)
        assert c["stranger_max_score"] < data["threshold"], (name, c)
        for reason, cost in c["by_reason"].items():
            assert cost["refused"] == c["refused"][reason] and cost["right_lost"] <= cost["refused"], (name, reason)
            # The gate's criterion: no refusal costs a right answer it does not pay for with more wrong ones saved.
            assert cost["right_lost"] == 0 or cost["right_lost"] < cost["wrong_saved"], (name, reason, cost)
    assert data["refusals"] == {"holds": True, "failing": []}, data["refusals"]
    clean = data["conditions"]["clean"]
    assert clean["detected"] == 1.0 and clean["rank1"] == 1.0 and clean["accepted_right"] >= 0.9, clean
    assert data["conditions"]["jpeg_20"]["detected"] == 1.0
    # A walk-up frame is refused for size or blur only where the recogniser fails anyway (quality.walkup_*):
    # whatever is found at 20 px between the eyes or blurred by sigma 3 is tried (it used to be refused as
    # too_small / blurry, costing right answers and saving no wrong one); at sigma 12 it is refused as blurry.
    for name in ("eyes_20px", "blur_3"):
        c = data["conditions"][name]
        assert c["accepted_right"] == c["ungated"]["accepted_right"] and c["refused"] == {}, (name, c)
    hopeless = data["conditions"]["blur_12"]
    blurry = hopeless["by_reason"]["blurry"]
    assert (blurry["right_lost"], blurry["wrong_saved"]) == (0, 0) and blurry["refused"] >= 30, hopeless


def test_bench_robustness_human_table_and_one_condition(invoke, subset: Path) -> None:
    result = invoke("bench", "robustness", "--data", str(subset), "--condition", "clean", "--condition", "mask")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in CONDITIONS]
    assert rows[:2] == ["clean", "mask"]
    assert "3 people enrolled (1 photo(s) each)" in lines[0]
    assert "23 of enrolled people, 30 of strangers" in result.output


def test_bench_robustness_names_an_unknown_condition(invoke, subset: Path) -> None:
    result = invoke("bench", "robustness", "--data", str(subset), "--condition", "fog")
    assert result.exit_code == 2 and "fog: not a condition; choose from clean, eyes_40px" in result.output


def test_the_refusal_criterion_names_a_reason_that_costs_as_many_right_answers_as_it_saves() -> None:
    from kiosk.tools.bench_robustness import refusals

    paying = {"clean": {"by_reason": {"blurry": {"refused": 5, "right_lost": 0, "wrong_saved": 0}}},
              "mask": {"by_reason": {"occluded": {"refused": 4, "right_lost": 1, "wrong_saved": 2}}}}
    assert refusals(paying) == {"holds": True, "failing": []}
    costly = {"roll_-30": {"by_reason": {"pose": {"refused": 3, "right_lost": 1, "wrong_saved": 1}}}}
    assert refusals(costly) == {"holds": False, "failing": [
        {"condition": "roll_-30", "reason": "pose", "refused": 3, "right_lost": 1, "wrong_saved": 1}]}
