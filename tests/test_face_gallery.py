"""Gallery 1:N search, model-id refusal, pack-change report, the k-of-n vote and the walk-up loop."""

from __future__ import annotations

import numpy as np
import pytest

from kiosk.base.errors import InvalidInput, ModelMismatch
from kiosk.face.config import MatchConfig
from kiosk.face.gallery import Gallery, Match, pack_change
from kiosk.face.vote import FrameVote
from kiosk.face.walkup import FrameProcessor, FrameState

RNG = np.random.default_rng(7)


def _unit(n: int, dim: int = 512) -> np.ndarray:
    v = RNG.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _near(vec: np.ndarray, cos: float) -> np.ndarray:
    noise = _unit(1)[0]
    noise -= (noise @ vec) * vec
    noise /= np.linalg.norm(noise)
    return cos * vec + np.sqrt(1 - cos**2) * noise


@pytest.fixture(scope="module")
def embeddings(face_engine, face_photos) -> dict[str, list[np.ndarray]]:
    out = {}
    for identity, photos in face_photos.people.items():
        out[identity] = []
        for photo in photos:
            face = face_engine.choose(face_engine.detect_photo(photo.image), photo.image.shape, policy="center")
            out[identity].append(face_engine.embed(photo.image, face))
    return out


def test_real_faces_are_found_with_margin_and_strangers_refused(embeddings) -> None:
    names = sorted(embeddings)
    enrolled, strangers = names[::2], names[1::2]
    gallery = Gallery("m1")
    for name in enrolled:
        gallery.add(name, embeddings[name][0])
    for name in enrolled:
        for probe in embeddings[name][1:]:
            match = gallery.search(probe)
            assert match.employee_id == name and match.accepted and match.reason == "match", match
            assert match.margin >= gallery.cfg.margin
    for name in strangers:
        for probe in embeddings[name]:
            match = gallery.search(probe)
            assert not match.accepted and match.reason == "below_threshold", (name, match)


def test_best_of_several_templates_and_remove(embeddings) -> None:
    gallery = Gallery("m1")
    a, b = sorted(embeddings)[:2]
    gallery.add(a, embeddings[b][0])  # a wrong template first...
    gallery.add(a, embeddings[a][0])  # ...and a right one: the best of a's templates counts
    gallery.add(b, embeddings[b][1])
    assert len(gallery) == 3 and gallery.employees == 2
    assert gallery.search(embeddings[a][1]).employee_id == a
    assert gallery.remove(a) == 2 and len(gallery) == 1
    assert gallery.search(embeddings[a][1]).employee_id == b
    assert gallery.best_of(embeddings[b][0], b) > 0.4 and gallery.best_of(embeddings[b][0], a) is None


def test_close_call_between_two_employees_is_ambiguous() -> None:
    gallery = Gallery("m1", MatchConfig(threshold=0.4, margin=0.05))
    base = _unit(1)[0]
    gallery.add("E1", _near(base, 0.80))
    gallery.add("E2", _near(base, 0.78))
    match = gallery.search(base)
    assert match.reason == "ambiguous" and not match.accepted and match.runner_up in {"E1", "E2"}
    assert gallery.search(np.zeros(512, np.float32) + 1).reason in {"below_threshold", "ambiguous"}


def test_empty_gallery() -> None:
    assert Gallery("m1").search(_unit(1)[0]) == Match(None, 0.0, 0.0, False, "empty_gallery")


def test_template_of_another_model_is_refused(embeddings) -> None:
    gallery = Gallery("model-a")
    name = sorted(embeddings)[0]
    with pytest.raises(ModelMismatch) as err:
        gallery.add(name, embeddings[name][0], model_id="model-b")
    assert "never compared" in err.value.what and "re-compute" in err.value.fix
    assert len(gallery) == 0


def test_store_templates_of_another_model_are_left_out_and_reported(fresh_store, face_engine, embeddings) -> None:
    names = sorted(embeddings)
    roster = fresh_store.roster
    roster.add("E1", "Current Model")
    roster.add("E2", "Old Model")
    roster.add_template("E1", face_engine.model_id, embeddings[names[0]][0], 0.9, "test")
    roster.add_template("E2", "0" * 64, embeddings[names[1]][0], 0.9, "test")
    gallery = Gallery.from_roster(roster, face_engine.model_id)
    assert len(gallery) == 1 and gallery.search(embeddings[names[1]][0]).employee_id == "E1"
    assert not gallery.search(embeddings[names[1]][0]).accepted
    message = pack_change(roster, face_engine.model_id)
    assert message and "1 stored template" in message and "Re-enrol" in message and "hub" in message
    with pytest.raises(ModelMismatch):
        gallery.add_template(roster.templates()[-1])


def test_coarse_index_decides_as_the_exact_scan_on_real_faces_among_realistic_distractors(face_engine,
                                                                                       face_data) -> None:
    """`kiosk bench gallery`'s set-up, smaller: the first photo of every person of the shared set enrolled
    among realistic distractors (60,000 templates), up to three more photos of each as probes. The coarse
    index must give every probe the exact scan's decision, runner-up included (the margin needs it)."""
    from kiosk.face import evaluation as ev
    from kiosk.tools.bench_face import realistic_distractors

    items, seen = [], {}
    for item in ev.photo_set(face_data):
        seen[item.identity] = seen.get(item.identity, 0) + 1
        if seen[item.identity] <= 4:
            items.append(item)
    vectors = ev.embed_labelled(face_engine, items)
    kept = [(item.identity, vectors[item.path]) for item in items if vectors[item.path] is not None]
    real = np.stack([v for _, v in kept]).astype(np.float32)
    first = {}
    for row, (identity, _) in enumerate(kept):
        first.setdefault(identity, row)
    fill = 60000 - len(first)
    gallery = Gallery("m", MatchConfig())
    gallery.add_many(list(first) + [f"D{i // 2:05d}" for i in range(fill)],
                     np.concatenate([real[list(first.values())], realistic_distractors(real, fill)]))
    gallery.prepare()
    assert gallery._coarse is not None  # the default exact_search_max leaves 60,000 templates to the index
    probes = [(identity, real[row]) for row, (identity, _) in enumerate(kept) if row not in first.values()]
    assert len(probes) > 100
    coarse = [gallery.search(probe) for _, probe in probes]
    gallery.cfg = MatchConfig(exact_search_max=100000)  # the same rows, scanned exactly
    for (identity, probe), b in zip(probes, coarse, strict=True):
        a = gallery.search(probe)
        assert (b.employee_id, b.reason, b.runner_up) == (a.employee_id, a.reason, a.runner_up), (identity, a, b)
        assert abs(a.score - b.score) < 1e-5 and abs(a.margin - b.margin) < 1e-5


def test_large_gallery_coarse_index_agrees_with_exact_search() -> None:
    vectors = _unit(3000)
    owners = [f"E{i // 2:04d}" for i in range(3000)]
    exact = Gallery("m", MatchConfig(exact_search_max=100000))
    coarse = Gallery("m", MatchConfig(exact_search_max=500, rerank_k=64))
    exact.add_many(owners, vectors)
    coarse.add_many(owners, vectors)
    for i in RNG.choice(3000, 40, replace=False):
        probe = _near(vectors[i], 0.6)
        a, b = exact.search(probe), coarse.search(probe)
        assert a.employee_id == b.employee_id == owners[i]
        assert abs(a.score - b.score) < 1e-5
    # Changes keep the index in step: a new template is found, a removed employee is gone.
    fresh = _unit(1)[0]
    coarse.add("NEW", fresh)
    assert coarse.search(_near(fresh, 0.6)).employee_id == "NEW"
    coarse.remove(owners[10])
    assert coarse.search(_near(vectors[10], 0.9)).employee_id != owners[10]



def test_a_match_is_reported_rounded_without_its_runner_up() -> None:
    match = Match("E1", 0.612345, 0.0456789, True, "match", runner_up="E2")
    assert match.to_dict() == {"employee_id": "E1", "score": 0.6123, "margin": 0.0457, "accepted": True,
                               "reason": "match"}


def test_removing_an_employee_keeps_every_other_row_wherever_the_rows_sit() -> None:
    vectors = _unit(5)
    owners = ["A", "B", "A", "B", "A"]  # A's rows first, in the middle and last
    gallery = Gallery("m")
    for owner, vec in zip(owners, vectors, strict=True):
        gallery.add(owner, vec)
    assert gallery.remove("nobody") == 0 and len(gallery) == 5
    assert gallery.remove("A") == 3
    assert len(gallery) == 2 and gallery.employees == 1 and gallery.best_of(vectors[0], "A") is None
    for row in (1, 3):
        match = gallery.search(vectors[row])
        assert match.employee_id == "B" and match.score == pytest.approx(1.0, abs=1e-5)
    for row in (0, 2, 4):
        assert gallery.search(vectors[row]).employee_id == "B"  # nobody else is left


@pytest.mark.parametrize("exact_search_max", [100000, 500])
def test_a_growing_gallery_keeps_its_rows_exact_and_coarse(exact_search_max: int) -> None:
    vectors = _unit(2200)
    owners = [f"E{i:04d}" for i in range(2200)]
    gallery = Gallery("m", MatchConfig(exact_search_max=exact_search_max, rerank_k=64))
    gallery.add_many(owners[:1000], vectors[:1000] * 3)  # rows are stored normalised
    gallery.add_many(owners[1000:1100], vectors[1000:1100])  # grows past the first 1024 rows
    assert len(gallery) == 1100
    gallery.search(vectors[0])  # a coarse gallery builds its index here; the adds below keep it in step
    for owner, vec in zip(owners[1100:], vectors[1100:], strict=True):
        gallery.add(owner, vec)  # grows again, one row at a time
    assert len(gallery) == 2200 and gallery.employees == 2200
    gallery.remove(owners[0])  # the last row moves into row 0
    assert len(gallery) == 2199
    for i in (1, 999, 1000, 1099, 1100, 2047, 2048, 2199):
        match = gallery.search(vectors[i])
        assert match.employee_id == owners[i] and match.score == pytest.approx(1.0, abs=1e-5), i
    assert gallery.search(vectors[0]).employee_id != owners[0]


def test_a_gallery_from_the_store_decides_with_the_given_settings(fresh_store) -> None:
    model = "ab" * 32
    vec = _unit(1)[0]
    fresh_store.roster.add("E1", "Person One")
    fresh_store.roster.add_template("E1", model, vec, 0.9, "test")
    probe = _near(vec, 0.9)
    assert Gallery.from_roster(fresh_store.roster, model).search(probe).reason == "match"
    strict = Gallery.from_roster(fresh_store.roster, model, MatchConfig(threshold=0.95))
    assert strict.search(probe).reason == "below_threshold"
    coarse = Gallery.from_roster(fresh_store.roster, model, MatchConfig(exact_search_max=0), threads=1)
    assert coarse.search(probe).reason == "match"  # its coarse index, built as it loads, answers



def test_pack_change_counts_the_templates_of_each_other_model(fresh_store) -> None:
    running, old, older = "ab" * 32, "cd" * 32, "01" * 32
    roster = fresh_store.roster
    for employee_id in ("E1", "E2", "E3"):
        roster.add(employee_id, f"Person {employee_id}")
    roster.add_template("E1", running, _unit(1)[0], 0.9, "test")
    assert pack_change(roster, running) is None
    roster.add_template("E2", old, _unit(1)[0], 0.9, "test")
    roster.add_template("E3", old, _unit(1)[0], 0.9, "test")
    roster.add_template("E3", older, _unit(1)[0], 0.9, "test")
    assert pack_change(roster, running) == (
        "the face model changed: 3 stored template(s) (1 of model 010101010101, 2 of model cdcdcdcdcdcd) cannot be "
        "used with the running model abababababab (1 template(s) usable). Re-enrol those people with `kiosk enroll "
        "add --photos ...`, or have the hub re-compute their templates for the new model; until then they can "
        "punch only by card.")
    assert pack_change(roster, "ef" * 32).startswith("the face model changed: 4 stored template(s) (") and \
        "with the running model efefefefefef (0 template(s) usable)." in pack_change(roster, "ef" * 32)



def test_a_vector_of_the_wrong_length_is_refused_by_name() -> None:
    gallery = Gallery("m")
    gallery.add("E1", _unit(1)[0])
    short = _unit(1, dim=511)[0]
    for call in (lambda: gallery.add("E2", short), lambda: gallery.search(short),
                 lambda: gallery.best_of(short, "E1")):
        with pytest.raises(InvalidInput) as err:
            call()
        assert err.value.what == "template has 511 values; this model's templates have 512"
    assert len(gallery) == 1


def test_a_template_of_another_model_is_refused_naming_both_models() -> None:
    gallery = Gallery("ab" * 32)
    with pytest.raises(ModelMismatch) as err:
        gallery.add("E1", _unit(1)[0], model_id="cd" * 32)
    assert (err.value.what, err.value.fix) == (
        "template of E1 was made by model cdcdcdcdcdcd, not the running model abababababab; embeddings of "
        "different models are never compared",
        "Re-enrol the person with `kiosk enroll add`, or let the hub re-compute templates for this model.")


def test_a_gallery_of_exactly_exact_search_max_templates_is_searched_exactly() -> None:
    vectors = _unit(600)
    gallery = Gallery("m", MatchConfig(exact_search_max=600, rerank_k=8))
    gallery.add_many([f"E{i:03d}" for i in range(600)], vectors)
    for i in (0, 299, 599):
        assert gallery.search(vectors[i]).employee_id == f"E{i:03d}"



def test_a_score_or_margin_exactly_at_its_floor_is_accepted() -> None:
    base = _unit(1)[0]
    one, two = _near(base, 0.8), _near(base, 0.6)

    def gallery(cfg: MatchConfig) -> Gallery:
        out = Gallery("m", cfg)
        out.add("E1", one)
        out.add("E2", two)
        return out

    exact = gallery(MatchConfig(threshold=0.0, margin=0.0)).search(base)
    at_threshold = gallery(MatchConfig(threshold=exact.score, margin=0.0)).search(base)
    at_margin = gallery(MatchConfig(threshold=0.0, margin=exact.margin)).search(base)
    assert (at_threshold.reason, at_threshold.accepted) == ("match", True)
    assert (at_margin.reason, at_margin.accepted) == ("match", True)
    above = gallery(MatchConfig(threshold=float(np.nextafter(exact.score, 1.0)), margin=0.0)).search(base)
    assert above.reason == "below_threshold"


def test_vote_needs_k_of_last_n() -> None:
    vote = FrameVote(3, 5)
    yes = Match("E1", 0.7, 0.3, True, "match")
    other = Match("E2", 0.7, 0.3, True, "match")
    no = Match("E1", 0.3, 0.3, False, "below_threshold")
    assert not vote.push(yes).decided  # one lucky frame never punches
    assert not vote.push(no).decided
    assert not vote.push(other).decided
    decision = vote.push(yes)
    assert not decision.decided and decision.votes == 2
    decision = vote.push(yes)
    assert decision.decided and decision.employee_id == "E1" and decision.votes == 3
    vote.reset()
    assert not vote.push(yes).decided


def test_vote_decides_on_two_consecutive_strong_frames() -> None:
    vote = FrameVote(3, 5, strong_threshold=0.53)
    strong = Match("E1", 0.7, 0.3, True, "match")
    weak = Match("E1", 0.45, 0.3, True, "match")
    other = Match("E2", 0.8, 0.3, True, "match")
    ambiguous = Match("E1", 0.9, 0.01, False, "ambiguous")
    assert not vote.push(strong).decided  # one strong frame is still one lucky frame
    decision = vote.push(strong)
    assert decision.decided and decision.strong and decision.employee_id == "E1" and decision.votes == 2
    for frames in ([strong, weak], [weak, strong], [strong, other], [ambiguous, strong]):
        vote.reset()
        decisions = [vote.push(m) for m in frames]
        assert not decisions[-1].decided, frames  # both frames strong, accepted, and for the same person
    vote.reset()
    decisions = [vote.push(m) for m in (weak, weak, weak)]
    assert decisions[-1].decided and not decisions[-1].strong  # k of n still decides the rest
    assert not FrameVote(3, 5).push(strong).decided and not FrameVote(3, 5, None).push(strong).decided


def _walkup_results(face_engine, photo, match_cfg: MatchConfig, frames: int = 7):  # noqa: ANN001, ANN202
    frame = photo.image
    face = face_engine.choose(face_engine.detect(frame), frame.shape)
    gallery = Gallery(face_engine.model_id, match_cfg)
    gallery.add("E1", face_engine.embed(frame, face))
    loop = FrameProcessor(face_engine, gallery)
    blank = np.full_like(frame, 90)
    assert loop.process(blank).state is FrameState.IDLE and not loop.tracking
    shifts = (0, 2, 4, 2, 0, -2, -4, -2, 0, 2)[:frames]
    return loop, blank, [loop.process(np.roll(frame, dx, axis=1)) for dx in shifts]


def test_walkup_decides_then_stops_embedding(face_engine, face_photos) -> None:
    photo = face_photos.clean[0]
    loop, blank, results = _walkup_results(face_engine, photo, MatchConfig(vote_k=3, vote_n=5, strong_decision=False))
    states = [r.state for r in results]
    assert states[:3] == [FrameState.DECIDING, FrameState.DECIDING, FrameState.DECIDED]
    assert all(s is FrameState.DECIDED for s in states[3:])
    assert [r.embedded for r in results] == [True, True, True, False, False, False, False]
    assert results[-1].decision.employee_id == "E1" and "embed" not in results[-1].timings_ms
    assert loop.tracking and loop.walkup_id == 1
    for _ in range(face_engine.cfg.track_grace_frames + 1):
        loop.process(blank)
    assert not loop.tracking
    assert loop.process(photo.image).state is FrameState.DECIDING  # a new walk-up starts from scratch
    assert loop.walkup_id == 2


def test_walkup_with_strong_frames_decides_at_the_second(face_engine, face_photos) -> None:
    """The enrolled photo itself scores far above the bundled pack's calibrated strong threshold."""
    _, _, results = _walkup_results(face_engine, face_photos.clean[0], MatchConfig(vote_k=3, vote_n=5), frames=3)
    assert [r.state for r in results] == [FrameState.DECIDING, FrameState.DECIDED, FrameState.DECIDED]
    assert results[1].decision.strong and [r.embedded for r in results] == [True, True, False]


def test_a_settled_walkup_looks_only_now_and_then_and_ends_on_time(face_engine, face_photos) -> None:
    """After the punch the face is looked for every settled_look_every_frames frames; once a look misses
    it looks at every frame and the unlooked frames count as misses, so the walk-up ends as soon as an
    unsettled one would (the next person in the queue is not taken for the last one)."""
    every, grace = face_engine.cfg.settled_look_every_frames, face_engine.cfg.track_grace_frames
    loop, blank, results = _walkup_results(face_engine, face_photos.clean[0], MatchConfig(), frames=2)
    assert results[-1].state is FrameState.DECIDED
    loop.settle()
    frames = looks = 0
    while loop.tracking:
        result = loop.process(blank)
        frames += 1
        looks += result.face is None  # an unlooked frame reports the followed face, unchanged
        assert frames <= max(every, grace + 1), "the walk-up outlived its grace"
    assert frames == max(every, grace + 1) and looks == frames - every + 1
    assert loop.process(face_photos.clean[0].image).state is FrameState.DECIDING and loop.walkup_id == 2


def test_walkup_gives_up_on_a_stranger(face_engine, face_photos) -> None:
    photo = face_photos.clean[0]
    loop = FrameProcessor(face_engine, Gallery(face_engine.model_id))
    results = [loop.process(photo.image) for _ in range(face_engine.cfg.max_embeds_per_walkup + 2)]
    assert sum(r.embedded for r in results) == face_engine.cfg.max_embeds_per_walkup
    assert results[-1].state is FrameState.UNKNOWN and results[-1].match.reason == "empty_gallery"
    loop.settle()  # the screen said "not recognised": from now on the face is only followed
    later = [loop.process(photo.image) for _ in range(2 * face_engine.cfg.settled_look_every_frames)]
    assert all(r.state is FrameState.UNKNOWN and r.face is not None and not r.embedded for r in later)
    assert all("embed" not in r.timings_ms for r in later) and loop.walkup_id == 1


def test_strong_threshold_comes_from_the_pack_calibration(tmp_path) -> None:  # noqa: ANN001
    import json

    from kiosk.face.calibration import CALIBRATION_FILE, strong_threshold
    from kiosk.face.config import FaceConfig
    from kiosk.face.pack import resolve_pack
    bundled = resolve_pack(FaceConfig())
    assert strong_threshold(bundled, MatchConfig()) == 0.53
    assert strong_threshold(bundled, MatchConfig(strong_decision=False)) is None
    assert strong_threshold(bundled, MatchConfig(strong_threshold=0.2)) == 0.40  # never below the match threshold
    own = tmp_path / "pack"
    own.mkdir()
    for path in (bundled.detector, bundled.recognizer):
        (own / path.name).symlink_to(path)
    pack = resolve_pack(FaceConfig(pack_dir=own))
    (own / CALIBRATION_FILE).write_text(json.dumps({"model_id": pack.model_id, "strong_threshold": 0.61}))
    assert strong_threshold(pack, MatchConfig()) == 0.61
    # Another model's calibration, or a damaged file, is ignored (here the recogniser is the bundled one).
    (own / CALIBRATION_FILE).write_text(json.dumps({"model_id": "f" * 64, "strong_threshold": 0.2}))
    assert strong_threshold(pack, MatchConfig()) == 0.53
    (own / CALIBRATION_FILE).write_text("{not json")
    assert strong_threshold(pack, MatchConfig()) == 0.53
