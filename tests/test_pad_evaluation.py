"""scripts/evaluate-pad.py: the presentation-attack evaluation runs on the shared videos and photos and its
tables count what the model said.

The real model (FaceAntiSpoofing.tflite converted to ONNX) needs TensorFlow to convert, which neither the
kiosk nor CI installs; these runs use ONNX files of the same signature ([1,256,256,3] -> two [1,8]) whose
score is known, so every count in the tables is known too.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "evaluate-pad.py"
SPOOF_KINDS = ("spoof_screen", "spoof_print", "spoof_screen_still")


def _dtn_like_model(path: Path, score: float) -> Path:
    """An ONNX file shaped like the converted Deep Tree Network whose spoof score is always ``score``: leaf
    predictions all ``-score`` (the score takes their absolute value), the tree routed to leaf 3."""
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 256, 256, 3])
    classes = helper.make_tensor_value_info("Identity", TensorProto.FLOAT, [1, 8])
    leaf = helper.make_tensor_value_info("Identity_1", TensorProto.FLOAT, [1, 8])
    axes = helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3])
    nodes = [helper.make_node("ReduceMean", ["input", "axes"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zeros"], ["z"]),
             helper.make_node("Add", ["z", "preds"], ["Identity"]),
             helper.make_node("Add", ["z", "onehot"], ["Identity_1"])]
    inits = [axes, helper.make_tensor("zeros", TensorProto.FLOAT, [1, 1], [0.0]),
             helper.make_tensor("preds", TensorProto.FLOAT, [1, 8], [-score] * 8),
             helper.make_tensor("onehot", TensorProto.FLOAT, [1, 8], [0, 0, 0, 1, 0, 0, 0, 0])]
    model = helper.make_model(helper.make_graph(nodes, "dtn", [x], [classes, leaf], inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)


def _sweep_row(stdout: str, threshold: str) -> list[str]:
    """The cells ("n/m (p %)") of the sweep's row for ``threshold``."""
    table = stdout.split("threshold sweep")[1].splitlines()
    row = next(line for line in table if line.split() and line.split()[0] == threshold)
    return re.findall(r"\d+/\d+ \(\d+ %\)|(?<= )-(?= |$)", row)


def test_tables_count_what_the_model_said(tmp_path: Path, video_data: Path, face_data: Path) -> None:
    model = _dtn_like_model(tmp_path / "dtn.onnx", 0.25)
    result = _run(str(model), "--videos", str(video_data), "--faces", str(face_data), "--faces-every", "60",
                  "--max-s", "0.7", "--fps", "5", "--window-s", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    with (video_data / "MANIFEST.tsv").open() as fh:
        kinds = {r["file"]: r["kind"] for r in csv.DictReader(fh, delimiter="\t")}
    clip_rows = {line.split()[1]: line.split() for line in result.stdout.split("threshold sweep")[0].splitlines()
                 if len(line.split()) > 2 and line.split()[1] in kinds}
    assert {k for f, k in kinds.items() if f in clip_rows} >= {"real_live", "blink", "spoof_screen", "spoof_print"}
    seen = [row for row in clip_rows.values() if row[2] != "0"]  # a walk-up clip may start with nobody in view
    assert len(seen) >= len(clip_rows) - 2
    for row in seen:
        assert row[3] == "0.250"  # the median score of the clip's frames
        assert row[4].startswith("0/")  # 0.25 is not below the package's 0.2: no frame live
    # 0.25 is live below 0.3 and not below 0.2: everything flips between those two rows.
    live_03 = _sweep_row(result.stdout, "0.3")
    live_02 = _sweep_row(result.stdout, "0.2")
    assert live_03[0].endswith("(100 %)") and live_03[1].startswith("0/") and live_03[-1].endswith("(100 %)")
    assert live_02[0].startswith("0/") and live_02[1].endswith("(100 %)") and live_02[-1].startswith("0/")
    spoofs = sum(1 for f, k in kinds.items() if k in SPOOF_KINDS and f in clip_rows)
    assert live_02[5] == f"{spoofs}/{spoofs} (100 %)"  # spoof clips never live
    assert "model / embedding:" in result.stdout and "load average" in result.stdout


def test_a_model_of_another_format_is_refused_with_the_way_out(tmp_path: Path, video_data: Path) -> None:
    from test_liveness import _constant_liveness_model
    model = _constant_liveness_model(tmp_path / "insightface.onnx", 0.9)  # [N,3,80,80] -> [N]
    result = _run(str(model), "--videos", str(video_data), "--faces", "")
    assert result.returncode != 0
    assert "not the converted FaceAntiSpoofing model" in result.stderr + result.stdout
    assert "scripts/convert-pad-model.py" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("missing", ["model", "videos"])
def test_missing_inputs_say_what_to_do(missing: str, tmp_path: Path, video_data: Path) -> None:
    model = _dtn_like_model(tmp_path / "dtn.onnx", 0.1) if missing == "videos" else tmp_path / "none.onnx"
    videos = tmp_path if missing == "videos" else video_data
    result = _run(str(model), "--videos", str(videos), "--faces", "")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("convert it first" if missing == "model" else "no MANIFEST.tsv") in result.stderr


@pytest.mark.parametrize("option", ["--faces-every", "--fps", "--max-s", "--window-s", "--scales"])
@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_number_that_cannot_be_used_is_refused_by_name(option: str, value: str, tmp_path: Path) -> None:
    """0 would divide by zero (or make an empty crop): said for the option, before anything is read."""
    result = _run(str(tmp_path / "none.onnx"), option, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"argument {option}" in result.stderr
