"""Between optimisation steps: dev accuracy on schedule, checkpoints on time and at the end, and a
checkpoint of the last step done when the trainer is told to stop."""

import signal

import pytest

from distill import train
from distill.train import MetricsLog, StepHooks


def make_hooks(monkeypatch, clock, **kw):
    monkeypatch.setattr(train.time, "time", lambda: clock[0])
    saved, logged = [], []
    hooks = StepHooks(
        saved.append,
        lambda: {"dev_char_accuracy": 0.12346, "ood_photo": 0.25},
        logged.append,
        **{"start": 0, "steps": 10, "eval_every": 4, "checkpoint_seconds": 100.0, **kw},
    )
    return hooks, saved, logged


def test_it_evaluates_every_few_steps_and_on_the_last(monkeypatch):
    hooks, saved, logged = make_hooks(monkeypatch, [0.0])
    for step in range(1, 11):
        hooks.on_step(step)
    assert [r["step"] for r in logged] == [4, 8, 10]
    assert logged[0] == {"step": 4, "dev_char_accuracy": 0.12346, "ood_photo": 0.25}
    assert saved == [10]  # no time passed: only the final checkpoint


def test_it_checkpoints_when_the_interval_has_passed(monkeypatch):
    clock = [0.0]
    hooks, saved, _ = make_hooks(monkeypatch, clock)
    for step, now in ((1, 50.0), (2, 101.0), (3, 150.0), (4, 202.0)):
        clock[0] = now
        hooks.on_step(step)
    assert saved == [2, 4]


def test_sigterm_saves_the_last_step_done_and_exits(monkeypatch):
    hooks, saved, _ = make_hooks(monkeypatch, [0.0], start=6)
    with pytest.raises(SystemExit) as stop:
        hooks.on_term(signal.SIGTERM, None)
    assert saved == [6] and stop.value.code == 128 + signal.SIGTERM
    hooks.on_step(7)
    with pytest.raises(SystemExit):
        hooks.on_term(signal.SIGTERM, None)
    assert saved == [6, 7]


def test_the_metrics_log_appends_json_lines(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log({"event": "start", "step": 0})
    log({"step": 20, "ctc": 1.5})
    assert (tmp_path / "metrics.jsonl").read_text() == '{"event": "start", "step": 0}\n{"step": 20, "ctc": 1.5}\n'


def test_the_detectors_hooks_checkpoint_by_steps_and_can_skip_evaluation(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(train.time, "time", lambda: clock[0])
    saved, logged = [], []
    hooks = StepHooks(
        saved.append, lambda: {"dev_det_f1": 0.9}, logged.append, start=0, steps=10, eval_every=0, checkpoint_every=4
    )
    for step in range(1, 11):
        clock[0] += 1000.0  # time alone never triggers a checkpoint here
        hooks.on_step(step)
    assert saved == [4, 8, 10] and logged == []


def test_exactly_one_checkpoint_rule_is_given():
    for kw in ({}, {"checkpoint_seconds": 1.0, "checkpoint_every": 2}, {"checkpoint_every": 0}):
        with pytest.raises(ValueError):
            StepHooks(print, dict, print, start=0, steps=1, eval_every=1, **kw)
