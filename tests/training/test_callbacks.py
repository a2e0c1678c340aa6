"""A callback's state goes into the checkpoint through ``checkpoint_files`` and comes back through
``load_checkpoint_files`` on resume (the loop reads it; nothing guesses paths); a fork starts afresh."""

from __future__ import annotations

from riverbed.training import Callback, train_branch


class Counter(Callback):
    """Counts steps across resumes, in counter.json."""

    def __init__(self) -> None:
        self.n = 0
        self.loaded: list[tuple[int, dict]] = []

    def on_step_end(self, ctx) -> None:
        self.n += 1

    def checkpoint_files(self, ctx):
        return {"counter.json": {"n": self.n}}

    def load_checkpoint_files(self, ctx, files) -> None:
        self.loaded.append((ctx.step, dict(files)))
        self.n = files["counter.json"]["n"]


def test_state_saved_by_checkpoint_files_is_loaded_back_on_resume(tmp_path, tiny_run_config):
    first = Counter()
    train_branch(tiny_run_config, tmp_path, "main", until_step=2, callbacks=[first], progress=False)
    assert (tmp_path / "branches/main/checkpoints/step_0000000002/counter.json").is_file()
    second = Counter()
    train_branch(tiny_run_config, tmp_path, "main", until_step=4, callbacks=[second], progress=False)
    assert second.loaded == [(2, {"counter.json": {"n": 2}})]
    assert second.n == 4  # resumed, not restarted


def test_a_fork_or_a_fresh_branch_loads_nothing(tmp_path, tiny_run_config):
    train_branch(tiny_run_config, tmp_path, "main", until_step=2, callbacks=[Counter()], progress=False)
    fork = Counter()
    train_branch(tiny_run_config, tmp_path, "decay", until_step=4, init=tmp_path / "branches/main/checkpoints/step_0000000002",
                 callbacks=[fork], progress=False)
    assert fork.loaded == [] and fork.n == 2
