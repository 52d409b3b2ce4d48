"""The decisions at their boundaries: open-set threshold and margin (real embeddings mixed in controlled
proportions), the k-of-n vote over the last n frames, the debounce window on the same boot and after a
reboot, and the hub's rule for a punch id sent again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from test_hub_api import register, upload
from test_sync_protocol import chain

from kiosk.base.events import EventBus, EventKind
from kiosk.base.record import punch_hash
from kiosk.config import load_config
from kiosk.face.config import MatchConfig
from kiosk.face.gallery import Gallery, Match
from kiosk.face.vote import Decision, FrameVote
from kiosk.punching.policy import PunchPolicy
from kiosk.time.config import ClockConfig
from kiosk.time.trusted import TrustedClock
from sync.errors import Unauthorized
from sync.hub import devices
from sync.hub.ingest import ingest

EPS = 0.004  # how far from a boundary each probe sits (cosine); well above float32 rounding

SHIPPED = MatchConfig()  # the defaults a kiosk runs with: a lowered threshold must fail these tests


@pytest.fixture(scope="module")
def faces(face_engine, face_photos) -> dict[str, np.ndarray]:
    """One real, normalised embedding per identity."""
    out = {}
    for identity, photos in sorted(face_photos.people.items()):
        photo = photos[0]
        face = face_engine.choose(face_engine.detect_photo(photo.image), photo.image.shape, policy="center")
        if face is not None:
            vec = face_engine.embed(photo.image, face)
            out[identity] = vec / np.linalg.norm(vec)
    assert len(out) >= 4
    return out


def basis(*vectors: np.ndarray) -> list[np.ndarray]:
    """Gram-Schmidt: orthonormal directions spanning the given real embeddings, in order."""
    out: list[np.ndarray] = []
    for vec in vectors:
        rest = vec - sum(float(vec @ e) * e for e in out)
        out.append(rest / np.linalg.norm(rest))
    return out


def probe_at(enrolled: np.ndarray, stranger: np.ndarray, cos: float) -> np.ndarray:
    """A face-like probe whose cosine to ``enrolled`` is exactly ``cos``: the rest is a real stranger."""
    e1, e2 = basis(enrolled, stranger)
    return (cos * e1 + np.sqrt(1 - cos**2) * e2).astype(np.float32)


def gallery_of(faces: dict[str, np.ndarray], names: list[str], cfg: MatchConfig = SHIPPED) -> Gallery:
    gallery = Gallery("m", cfg)
    for name in names:
        gallery.add(name, faces[name])
    return gallery


# -- the open-set threshold -------------------------------------------------------------------

@pytest.mark.parametrize(("offset", "accepted"), [(+EPS, True), (-EPS, False), (-0.05, False), (-0.10, False)])
def test_threshold_boundary_with_real_embeddings(faces, offset: float, accepted: bool) -> None:
    names = sorted(faces)
    enrolled, stranger = names[0], names[-1]
    gallery = gallery_of(faces, names[:-1])  # everyone but the stranger
    probe = probe_at(faces[enrolled], faces[stranger], SHIPPED.threshold + offset)
    match = gallery.search(probe)
    assert match.employee_id == enrolled
    assert match.score == pytest.approx(SHIPPED.threshold + offset, abs=1e-4)
    assert match.accepted is accepted
    assert match.reason == ("match" if accepted else "below_threshold")


def test_shipped_threshold_and_margin_are_the_calibrated_ones() -> None:
    # The operating point measured on ../shared/faces (README "Face recognition"); changing it is a
    # decision to make with the accuracy benchmark, not by accident.
    assert (SHIPPED.threshold, SHIPPED.margin) == (0.40, 0.05)


@pytest.mark.parametrize(("lead", "accepted"), [(SHIPPED.margin + EPS, True), (SHIPPED.margin - EPS, False)])
def test_margin_boundary_between_two_enrolled_people(faces, lead: float, accepted: bool) -> None:
    a, b, stranger = sorted(faces)[:3]
    e1, e2, e3 = basis(faces[a], faces[b], faces[stranger])
    c = float(faces[a] @ faces[b])
    s = float(faces[b] @ e2)
    x = 0.60  # well above the threshold: only the margin decides
    y = (x - lead - c * x) / s  # so that the probe's cosine to b is x - lead
    probe = (x * e1 + y * e2 + np.sqrt(1 - x**2 - y**2) * e3).astype(np.float32)
    match = gallery_of(faces, [a, b]).search(probe)
    assert match.employee_id == a and match.runner_up == b
    assert match.margin == pytest.approx(lead, abs=1e-4)
    assert match.accepted is accepted and match.reason == ("match" if accepted else "ambiguous")


def test_a_lone_employee_has_a_margin_over_nobody(faces) -> None:
    a, stranger = sorted(faces)[0], sorted(faces)[-1]
    probe = probe_at(faces[a], faces[stranger], 0.5)
    match = gallery_of(faces, [a]).search(probe)
    assert match.accepted and match.runner_up is None and match.margin == pytest.approx(0.5, abs=1e-4)


# -- the k-of-n vote --------------------------------------------------------------------------

def frame(employee_id: str | None, score: float = 0.6) -> Match | None:
    if employee_id is None:
        return None
    return Match(employee_id, score, 0.3, True, "match")


def test_vote_counts_only_the_last_n_frames() -> None:
    vote = FrameVote(3, 5)
    for m in (frame("E1"), frame("E1"), None, None, None, None):
        decision = vote.push(m)
    assert decision.employee_id == "E1" and decision.votes == 1 and decision.frames == 5  # the first fell out
    assert vote.push(frame("E1")).votes == 1  # and now the second: three E1 frames, never 3 of the last 5
    assert not vote.push(frame("E1")).decided
    decision = vote.push(frame("E1", 0.7))
    assert decision.decided and decision.votes == 3 and decision.frames == 5 and decision.score == 0.7


def test_interleaved_frames_of_two_people_decide_for_the_one_with_k() -> None:
    vote = FrameVote(3, 5)
    decisions = [vote.push(frame(e, s)) for e, s in
                 (("E1", 0.61), ("E2", 0.9), ("E1", 0.62), ("E2", 0.8), ("E1", 0.63))]
    assert [d.decided for d in decisions] == [False, False, False, False, True]
    last = decisions[-1]
    assert (last.employee_id, last.votes, last.frames, last.score) == ("E1", 3, 5, 0.63)
    assert decisions[1].employee_id == "E2"  # a tie on votes goes to the better score


def test_refused_frames_vote_for_nobody() -> None:
    vote = FrameVote(2, 3)
    refused = Match("E1", 0.35, 0.3, False, "below_threshold")
    decision = vote.push(refused)
    assert (decision.employee_id, decision.votes, decision.frames, decision.decided, decision.score) == \
        (None, 0, 1, False, 0.0)
    assert vote.push(frame("E1")).votes == 1
    assert vote.push(refused).votes == 1
    vote.reset()
    assert vote.push(None).frames == 1


@pytest.mark.parametrize(("k", "n", "ok"), [(1, 1, True), (5, 5, True), (0, 5, False), (6, 5, False)])
def test_vote_needs_one_to_n(k: int, n: int, ok: bool) -> None:
    if ok:
        assert FrameVote(k, n).push(frame("E1")).decided is (k == 1)
    else:
        with pytest.raises(ValueError, match=r"^need 1 <= k <= n$"):
            FrameVote(k, n)


def test_a_strong_decision_needs_two_frames() -> None:
    with pytest.raises(ValueError, match=r"^a strong decision needs at least 2 frames$"):
        FrameVote(3, 5, 0.5, strong_frames=1)


def test_strong_frames_at_the_threshold_decide_and_are_marked_strong_only_before_k() -> None:
    vote = FrameVote(3, 5, strong_threshold=0.55)
    assert vote.push(frame("E1", 0.55)) == Decision("E1", 1, 1, False, 0.55, strong=False)
    assert vote.push(frame("E1", 0.55)) == Decision("E1", 2, 2, True, 0.55, strong=True)  # at the threshold
    # With k = 2 the same two frames are k of n: decided, but not by the shortcut.
    vote = FrameVote(2, 5, strong_threshold=0.55)
    vote.push(frame("E1", 0.6))
    assert vote.push(frame("E1", 0.6)) == Decision("E1", 2, 2, True, 0.6, strong=False)


def test_vote_from_config_takes_strong_frames() -> None:
    vote = FrameVote.from_config(MatchConfig(vote_k=4, vote_n=6, strong_frames=3), strong_threshold=0.55)
    assert (vote.k, vote.n, vote.strong_threshold, vote.strong_frames) == (4, 6, 0.55, 3)
    decisions = [vote.push(frame("E1", 0.7)) for _ in range(3)]
    assert [(d.decided, d.strong) for d in decisions] == [(False, False), (False, False), (True, True)]


# -- the debounce window ----------------------------------------------------------------------

class Dial:
    """The wall clock, monotonic clock and boot id the policy's trusted clock reads."""

    def __init__(self) -> None:
        self.wall = datetime(2026, 11, 30, 8, 57, tzinfo=UTC).timestamp()
        self.mono = 1_000_000_000_000
        self.boot = "boot-1"

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += int(seconds * 1e9)

    def reboot(self, seconds_off: float) -> None:
        """Power off for ``seconds_off``: a new boot whose monotonic clock starts again near zero."""
        self.wall += seconds_off
        self.mono, self.boot = 5_000_000_000, "boot-2"


@pytest.fixture
def punching(kiosk_home, fresh_store):
    fresh_store.roster.add("E1", "Wang Li")
    dial = Dial()
    clock = TrustedClock(ClockConfig(), kernel_synced=lambda: True, wall=lambda: dial.wall,
                         mono=lambda: dial.mono, boot=lambda: dial.boot)
    config = load_config(kiosk_home, ["punch.mode='face'", "punch.debounce_s=60"])
    policy = PunchPolicy(config, fresh_store, clock, EventBus(stdout_json=False))
    return policy, dial, fresh_store


@pytest.mark.parametrize("reboot", [False, True], ids=["same boot", "after a reboot"])
def test_debounce_window_edges(punching, reboot: bool) -> None:
    policy, dial, store = punching
    assert policy.on_face("E1", 0.7).kind is EventKind.PUNCHED
    if reboot:
        dial.reboot(seconds_off=59.9)  # the wall clock is all that ties the two boots together
    else:
        dial.advance(59.9)
    again = policy.on_face("E1", 0.7)
    assert again.kind is EventKind.ALREADY_PUNCHED and again.local_time == "08:57"
    dial.advance(0.2)  # 60.1 s after the first punch
    assert policy.on_face("E1", 0.7).kind is EventKind.PUNCHED
    punches = list(store.punches.iter())
    assert len(punches) == 2 and {p.boot_id for p in punches} == ({"boot-1", "boot-2"} if reboot else {"boot-1"})
    assert punches[1].ts_utc == (datetime(2026, 11, 30, 8, 57, tzinfo=UTC) + timedelta(seconds=60.1)).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def test_debounce_never_outlasts_its_window(punching) -> None:
    policy, dial, store = punching
    for _ in range(3):  # punch out, in, out over a day: each one stored
        assert policy.on_face("E1", 0.7).kind is EventKind.PUNCHED
        dial.advance(4 * 3600)
    assert store.punches.count() == 3


def test_a_wall_clock_set_back_after_a_reboot_does_not_debounce_forever(punching) -> None:
    policy, dial, store = punching
    assert policy.on_face("E1", 0.7).kind is EventKind.PUNCHED
    dial.reboot(seconds_off=-3600)  # the new boot's wall clock reads an hour earlier than the punch
    assert policy.on_face("E1", 0.7).kind is EventKind.PUNCHED  # negative elapsed time is no recent punch
    assert store.punches.count() == 2


# -- the hub: a punch id sent again -----------------------------------------------------------

def open_issues(hub, device) -> list[tuple[str, int, int]]:
    """Open chain issues (issues about one person's punches are tests/test_hub_roster_flags.py's)."""
    issues = hub.hr.get(f"/v1/hr/devices/{device.device_id}").json()["issues"]
    return sorted((i["kind"], i["seq_from"], i["seq_to"]) for i in issues
                  if i["resolved_utc"] is None and not i["employee_id"])


def test_a_resent_id_with_other_content_is_refused_and_raised(hub) -> None:
    device = register(hub)
    records = chain(3)
    upload(device, records)
    # Same id and seq, other content, correctly hashed: a kiosk rewriting history, or a cloned store.
    rewritten = {**records[1], "employee_id": "E2"}
    rewritten["hash"] = punch_hash({k: v for k, v in rewritten.items() if k != "hash"})
    same = dict(records[2])
    answer = upload(device, [rewritten, same])
    assert [(r["status"], r.get("reason")) for r in answer["results"]] == [
        ("rejected", "this punch id is already stored with different content"), ("duplicate", "")]
    assert open_issues(hub, device) == [("id_conflict", 2, 2)]
    assert [(p["seq"], p["employee_id"]) for p in hub.export()] == [(1, "E1"), (2, "E1"), (3, "E1")]
    with hub.db.transaction(write=False) as tx:
        kept = tx.rows("SELECT punch_id, reason FROM punch_rejects")
    assert kept == [{"punch_id": records[1]["id"], "reason": "this punch id is already stored with different content"}]


def test_the_same_id_from_another_device_is_a_conflict_not_a_duplicate(hub) -> None:
    first, second = register(hub), register(hub)
    record = chain(1)[0]
    assert upload(first, [record])["results"][0]["status"] == "accepted"
    assert upload(second, [record])["results"][0]["status"] == "rejected"
    assert open_issues(hub, second) == [("id_conflict", 1, 1)] and open_issues(hub, first) == []


def test_a_late_punch_that_does_not_link_is_a_chain_break(hub) -> None:
    device = register(hub)
    records = chain(4)
    upload(device, [records[0], records[3]])  # seq 2-3 missing
    assert open_issues(hub, device) == [("gap", 2, 3)]
    forged = chain(1, start_seq=2, prev="f" * 64)[0]  # fills the gap but links to nothing
    answer = upload(device, [forged])
    assert answer["results"][0]["reason"] == "chain: break"
    assert open_issues(hub, device) == [("chain_break", 2, 2), ("gap", 3, 3)]
    # The genuine seq 3 links to seq 4 but not to the forged seq 2.
    answer = upload(device, [records[2]])
    assert answer["results"][0]["reason"] == "chain: break"
    assert ("chain_break", 3, 3) in open_issues(hub, device)
    assert {p["seq"]: p["chain"] for p in hub.export()} == {1: "ok", 2: "break", 3: "break", 4: "ok"}


@pytest.mark.parametrize("one_batch", [False, True], ids=["fork_stored_first", "fork_in_the_same_batch"])
def test_a_late_punch_is_linked_to_the_chain_never_to_a_fork_at_the_seq_before(hub, one_batch: bool) -> None:
    records = chain(5)
    # The kiosk registers again after delivering seq 1-2 elsewhere: the hub holds no punch at seq 1-2.
    device = register(hub, chain_seq=2, chain_hash=records[1]["hash"])
    fork = chain(1, start_seq=2, prev=records[0]["hash"], employee_id="E2")[0]  # another seq 2: a fork
    upload(device, [records[4]])  # seq 3-4 missing
    # The genuine seq 3 follows a seq 2 the hub never received: nothing to check it against, so it is late
    # (not a break for failing to link to the fork's hash).
    answers = upload(device, [fork, records[2]])["results"] if one_batch else [
        *upload(device, [fork])["results"], *upload(device, [records[2]])["results"]]
    assert [(r["status"], r["reason"]) for r in answers] == [("accepted", "chain: fork"), ("accepted", "chain: late")]
    assert open_issues(hub, device) == [("fork", 2, 2), ("gap", 4, 4)]
    assert {(p["seq"], p["employee_id"]): p["chain"] for p in hub.export()} == {
        (2, "E2"): "fork", (3, "E1"): "late", (5, "E1"): "after_gap"}


def test_a_device_revoked_while_its_batch_is_on_the_way_stores_nothing(hub) -> None:
    client = register(hub)
    # Authenticated as the request arrives, revoked before ingest takes the device's row.
    device = devices.authenticate_device(hub.db, client.headers["Authorization"].removeprefix("Bearer "))
    devices.revoke_device(hub.db, device.id)
    with pytest.raises(Unauthorized) as err:
        ingest(hub.db, device, chain(1), max_ahead_s=300.0)
    assert (err.value.what, err.value.fix) == ("this device was revoked", "Register the kiosk again with a new code.")
    assert hub.export() == []
