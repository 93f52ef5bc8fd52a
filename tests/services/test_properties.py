"""Random histories of uploads, yanks, deletions, restores, quarantines, reopenings and
clock advances; after every step the promises hold (Hypothesis, stateful)."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from moorage.config import Settings
from moorage.domain.clock import ManualClock
from moorage.domain.decisions import NOT_FOUND, Denied
from moorage.services import accounts, deletion, lifecycle
from moorage.services.context import open_context
from moorage.store import queries
from tests.services.conftest import START
from tests.services.helpers import all_events, upload
from tests.support.dists import Dist, make_wheel

VERSIONS = ["1.0", "1.1", "2.0b1"]
TAGS = ["py3-none-any", "py2-none-any", "cp311-cp311-linux_x86_64"]


class IndexHistory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="moorage-prop-"))
        self.clock = ManualClock(START)
        self.ctx = open_context(Settings(data_dir=self.tmp / "data"), self.clock, migrate=True)
        accounts.add_user(self.ctx, "owner", password=None)
        self.token = accounts.create_token(self.ctx, "owner")[1]
        self.accepted: dict[str, str] = {}  # filename -> sha256, forever
        self.uploaded_at: dict[str, object] = {}
        self.deleted: set[str] = set()
        self.quarantined = False
        self.events = 0
        self.serial_checked = 0
        self.n = 0

    def teardown(self) -> None:
        self.ctx.close()

    def _dist(self, version: str, tag: str, body: str = "") -> Dist:
        self.n += 1
        return make_wheel(self.tmp / f"d{self.n}", "prop", version, tag=tag, module_body=f"x = {body!r}\n")

    def _events(self) -> int:
        return len(all_events(self.ctx))

    def _expect_events(self, before: int, expected: int) -> None:
        assert self._events() - before == expected

    @rule(version=st.sampled_from(VERSIONS), tag=st.sampled_from(TAGS), body=st.sampled_from(["a", "b"]))
    def upload_a_file(self, version: str, tag: str, body: str) -> None:
        dist = self._dist(version, tag, body)
        before = self._events()
        try:
            result = upload(self.ctx, self.token, dist)
        except Denied as refused:
            self._expect_events(before, 0)
            rule_id = refused.decision.rule
            if dist.filename in self.accepted:
                assert rule_id in ("file-exists", "file-deleted")
                assert dist.filename in self.deleted or self.accepted[dist.filename] != dist.sha256
            else:
                assert rule_id in ("upload-window", "project-quarantined")
            return
        if dist.filename in self.accepted:  # the same bytes again: nothing changes
            assert result.outcome == "exists" and self.accepted[dist.filename] == dist.sha256
            assert dist.filename not in self.deleted
            self._expect_events(before, 0)
            return
        assert result.outcome == "created"
        self.accepted[dist.filename] = dist.sha256
        self.uploaded_at[dist.filename] = self.clock.now()
        assert self._events() - before in (1, 2, 4)  # file, + release, + project and owner

    @rule(version=st.sampled_from(VERSIONS))
    def yank(self, version: str) -> None:
        before = self._events()
        try:
            done = lifecycle.yank(self.ctx, "prop", version, reason="r", as_user="owner")
        except Denied:  # a refusal, or no such release (withheld by a quarantine)
            self._expect_events(before, 0)
            return
        self._expect_events(before, 1 if done else 0)

    @rule(data=st.data())
    def owner_deletes_a_file(self, data: st.DataObject) -> None:
        live = sorted(set(self.accepted) - self.deleted)
        if not live:
            return
        filename = data.draw(st.sampled_from(live))
        version = filename.split("-")[1]
        before = self._events()
        age = self.clock.now() - self.uploaded_at[filename]  # type: ignore[operator]
        try:
            deletion.delete(self.ctx, "prop", version, filename, as_user="owner")
        except Denied as refused:
            if refused.decision.rule == NOT_FOUND:  # the release or project is withheld by a quarantine
                return
            self._expect_events(before, 0)
            assert refused.decision.rule == "deletion-window"
            assert age >= timedelta(hours=72) and "b" not in version
            return
        # A non-admin never deletes a final release's file outside its window.
        assert age < timedelta(hours=72) or "b" in version
        self.deleted.add(filename)
        self._expect_events(before, 1)

    @precondition(lambda self: bool(self.deleted))
    @rule(data=st.data())
    def admin_restores_a_file(self, data: st.DataObject) -> None:
        filename = data.draw(st.sampled_from(sorted(self.deleted)))
        before = self._events()
        restored = deletion.restore(self.ctx, "prop", filename.split("-")[1], filename, reason="asked")
        assert restored == [filename]  # exactly what was deleted
        self.deleted.discard(filename)
        self._expect_events(before, 1)

    @precondition(lambda self: bool(self.accepted))
    @rule()
    def toggle_quarantine(self) -> None:
        before = self._events()
        lifecycle.set_status(self.ctx, "prop", "active" if self.quarantined else "quarantined", reason="check")
        self.quarantined = not self.quarantined
        self._expect_events(before, 1)

    @precondition(lambda self: bool(self.accepted))
    @rule(version=st.sampled_from(VERSIONS))
    def reopen(self, version: str) -> None:
        before = self._events()
        try:
            lifecycle.reopen(self.ctx, "prop", version, reason="more wheels", days=1, as_user="owner")
        except Denied as refused:
            if refused.decision.rule != NOT_FOUND:
                raise
            self._expect_events(before, 0)
            return
        self._expect_events(before, 1)

    @rule(hours=st.integers(min_value=1, max_value=24 * 20))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))

    @invariant()
    def what_is_served_is_what_was_accepted(self) -> None:
        with self.ctx.db.read() as conn:
            view = queries.load_project(conn, "prop", now=self.clock.now())
            served = {f.filename: f.sha256 for f in view.files} if view else {}
            for filename, sha in served.items():
                assert self.accepted[filename] == sha  # a filename never serves other bytes
                assert hashlib.sha256(self.ctx.blobs.read(sha)).hexdigest() == sha
            assert not (set(served) & self.deleted)
            if self.quarantined:
                assert served == {}  # quarantined files are never served
                for filename in self.accepted:
                    assert queries.find_file(conn, filename, now=self.clock.now()) is None
            else:
                assert set(served) == set(self.accepted) - self.deleted

    @invariant()
    def serials_only_grow(self) -> None:
        events = all_events(self.ctx)
        serials = [e.serial for e in events]
        assert serials == sorted(serials) and len(set(serials)) == len(serials)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_random_histories_keep_every_promise() -> None:
    machine = IndexHistory
    machine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
    machine.TestCase().runTest()
