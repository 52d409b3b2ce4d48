"""The screen's words live only in the catalogues: en and zh have the same keys, and every key the
page, the admin mode and the enrolment flow can ask for exists in both."""

from __future__ import annotations

import json
import re
from typing import get_args

import pytest

from conftest import REPO
from hardware.device import DeviceState
from hardware.reasons import REASONS
from kiosk.base.record import METHODS
from kiosk.punching.config import PunchMode
from kiosk.ui.i18n import CATALOGUE_DIR, LANGUAGES, catalogue, translate

UI = REPO / "kiosk" / "ui"
STATIC = UI / "static"


def keys(lang: str) -> set[str]:
    return set(json.loads((CATALOGUE_DIR / f"{lang}.json").read_text(encoding="utf-8")))


def test_languages_have_the_same_keys_and_no_empty_text() -> None:
    english = keys("en")
    for lang in LANGUAGES:
        assert keys(lang) == english, f"{lang}.json differs from en.json"
        assert all(text.strip() for text in catalogue(lang).values())
    # Placeholders match between languages, so a translation never drops a value.
    for key in english:
        placeholders = [set(re.findall(r"\{\w+\}", catalogue(lang)[key])) for lang in LANGUAGES]
        assert all(p == placeholders[0] for p in placeholders), key


def test_the_page_names_only_known_keys_and_holds_no_words() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-placeholder)?="([^"]+)"', html))
    assert used and used <= keys("en")
    body = re.sub(r"<script.*?</script>|<style.*?</style>|<title.*?</title>", "", html, flags=re.S)
    visible = re.sub(r"<[^>]+>", " ", body)
    assert re.fullmatch(r"[\s0-9]*", visible), "words in index.html: put them in the catalogues"


def literal_keys(source: str) -> set[str]:
    prefixes = "|".join(sorted({k.split(".")[0] for k in keys("en")}))
    return set(re.findall(rf'"((?:{prefixes})\.[a-z_+]+)"', source))


def test_every_literal_key_in_the_scripts_exists() -> None:
    for script in STATIC.glob("*.js"):
        missing = literal_keys(script.read_text(encoding="utf-8")) - keys("en")
        assert not missing, f"{script.name}: {sorted(missing)}"


def test_every_code_the_server_can_send_has_a_sentence() -> None:
    known = keys("en")
    python = "\n".join(p.read_text(encoding="utf-8") for p in [*UI.glob("*.py"), REPO / "enrollment" / "guided.py"])
    errors = set(re.findall(r'UiError\("([a-z_]+)"', python))
    assert errors and {f"error.{code}" for code in errors} <= known
    for code in ("invalid_input", "conflict", "not_found", "store_error", "failed"):
        assert f"error.{code}" in known
    guided = (REPO / "enrollment" / "guided.py").read_text(encoding="utf-8")
    guidance = set(re.findall(r'"([a-z_]+)"\)', guided.split("GUIDANCE_BY_REASON = (")[1].split(")\n")[0]))
    guidance |= set(re.findall(r'guidance = "([a-z_]+)"', guided))
    guidance |= set(re.findall(r'return None, "([a-z_]+)"', guided))
    guidance |= {"look_at_camera", "look_again"}
    assert {f"guide.{g}" for g in guidance} <= known
    failures = set(re.findall(r'_fail\("([a-z_]+)"', guided)) | {"capture_timeout", "selftest_failed"}
    assert {f"failure.{f}" for f in failures} <= known
    assert {f"state.{s.value}" for s in DeviceState} <= known
    assert {f"method.{m}" for m in METHODS} <= known
    assert {f"mode.{m}" for m in get_args(PunchMode)} <= known
    assert {"warning.other_employee", "warning.not_same_person"} <= known


@pytest.mark.parametrize(("lang", "expected"), [("en", "Already punched at 08:57"), ("zh", "已于 08:57 打卡")])
def test_translate_fills_placeholders(lang: str, expected: str) -> None:
    assert translate(lang, "result.already", time="08:57") == expected
    assert translate(lang, "no.such.key") == "no.such.key"


def test_the_screen_handles_every_event_kind() -> None:
    from kiosk.base.events import EventKind

    script = (STATIC / "screen.js").read_text(encoding="utf-8")
    results = script.split("const RESULTS = {")[1].split("};")[0]
    shown = set(re.findall(r"^\s+(\w+): \{", results, flags=re.M))
    handled = shown | set(re.findall(r'event\.kind === "(\w+)"', script)) | {"ready"}
    assert {kind.value for kind in EventKind} <= handled
    assert {f"result.{k}" for k in re.findall(r'title: "result\.(\w+)"', results)} <= keys("en")


def test_every_device_reason_reads_in_each_language() -> None:
    """The health page translates a device's reason code with its parameters; English is hardware's own."""
    for code, english in REASONS.items():
        assert catalogue("en")[f"reason.{code}"] == english, code
        assert f"reason.{code}" in catalogue("zh"), code
    assert translate("zh", "reason.camera_frames", width=640, height=480, source="v4l2:/dev/video0") == \
        "640×480 画面，来自 v4l2:/dev/video0"


def test_the_screen_asks_for_each_covering_by_name() -> None:
    """Every reason the walk-up is not recognised with (a mask, sunglasses) has its own request, in both languages."""
    from kiosk.face.quality import COVERED

    script = (STATIC / "screen.js").read_text(encoding="utf-8")
    uncover = dict(re.findall(r'(\w+): "(result\.uncover_\w+)"', script.split("const UNCOVER = {")[1].split("};")[0]))
    assert set(uncover) == set(COVERED)
    for lang in ("en", "zh"):
        assert set(uncover.values()) <= keys(lang)
