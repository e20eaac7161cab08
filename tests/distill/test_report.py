"""One reader of metrics.jsonl and one plotter, for `distill plot` and the platform's training jobs."""

import json
import subprocess
import sys

from engine.report import parse_metrics, plot_png, plot_runs, read_metrics
from tests.conftest import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def lines(*records):
    return [json.dumps(r) for r in records]


def test_it_reads_steps_loss_terms_and_dev_accuracy():
    m = parse_metrics(
        lines(
            {"event": "start", "step": 0, "steps": 100, "arch": "student"},
            {"step": 20, "lr": 1e-4, "sec": 3.0, "ctc": 2.5, "kd": 1.5, "total": 2.0},
            {"step": 20, "dev_char_accuracy": 0.25, "dev_line_accuracy": 0.0},
            {"step": 40, "lr": 2e-4, "sec": 6.0, "ctc": 2.0, "kd": 1.0, "total": 1.5},
            {"event": "done", "step": 100},
        )
    )
    assert (m.steps, m.step) == (100, 100)
    assert m.losses == [
        {"step": 20, "ctc": 2.5, "kd": 1.5, "total": 2.0},
        {"step": 40, "ctc": 2.0, "kd": 1.0, "total": 1.5},
    ]
    assert m.devs == [{"step": 20, "dev_char_accuracy": 0.25, "dev_line_accuracy": 0.0}]
    assert m.terms == ["ctc", "kd", "total"]


def test_a_resumed_run_drops_the_steps_it_redoes_and_a_fresh_one_starts_over():
    before = (
        {"event": "start", "step": 0, "steps": 60},
        {"step": 20, "ctc": 3.0},
        {"step": 40, "ctc": 2.0},
        {"step": 40, "dev_char_accuracy": 0.5},
        {"step": 60, "ctc": 1.0},
    )
    resumed = parse_metrics(lines(*before, {"event": "start", "step": 40, "steps": 80}, {"step": 60, "ctc": 1.5}))
    assert [(r["step"], r["ctc"]) for r in resumed.losses] == [(20, 3.0), (40, 2.0), (60, 1.5)]
    assert [r["step"] for r in resumed.devs] == [40] and (resumed.step, resumed.steps) == (60, 80)
    fresh = parse_metrics(lines(*before, {"event": "start", "step": 0, "steps": 10}))
    assert (fresh.losses, fresh.devs, fresh.step, fresh.steps) == ([], [], 0, 10)


def test_a_line_being_written_and_foreign_lines_are_skipped():
    m = parse_metrics(
        lines({"event": "start", "step": 0, "steps": 5}, {"step": 2, "ctc": 1.0})
        + ['{"step": 4, "ct', "[1, 2]", '"text"', '{"no_step": 1}']
    )
    assert m.losses == [{"step": 2, "ctc": 1.0}] and m.step == 2


def test_a_missing_file_reads_as_no_progress(tmp_path):
    m = read_metrics(tmp_path)
    assert (m.step, m.steps, m.losses, m.devs) == (0, 0, [], [])


def test_the_job_progress_shows_the_latest_terms_and_accuracy(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        "\n".join(
            lines(
                {"event": "start", "step": 0, "steps": 50},
                {"step": 10, "lr": 0.1, "sec": 1.0, "ctc": 4.0},
                {"step": 10, "dev_char_accuracy": 0.2, "dev_line_accuracy": 0.1},
                {"step": 20, "lr": 0.1, "sec": 2.0, "ctc": 3.0},
            )
        )
        + "\n"
    )
    from ocr_api.training import curves_png, progress

    m = read_metrics(tmp_path)
    assert progress(m, 12.34) == {
        "step": 20,
        "steps": 50,
        "losses": {"ctc": 3.0},
        "dev_char_accuracy": 0.2,
        "dev_line_accuracy": 0.1,
        "eta_s": 12.3,
    }
    assert curves_png(m).startswith(PNG) and curves_png(read_metrics(tmp_path / "none")) is None


def test_the_reader_loads_without_torch():
    code = "import sys; sys.modules['torch'] = None; import engine.report"  # the web process has no torch
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_plotter_draws_several_runs_into_a_png(tmp_path):
    for name, acc in (("a", 0.3), ("b", 0.6)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(
            "\n".join(
                lines(
                    {"event": "start", "step": 0, "steps": 40},
                    {"step": 20, "ctc": 2.0, "kd": 1.0, "total": 1.4},
                    {"step": 40, "ctc": 1.0, "kd": 0.5, "total": 0.7},
                    {"step": 40, "dev_char_accuracy": acc},
                )
            )
        )
    out = plot_runs({"a": tmp_path / "a", "b": tmp_path / "b"}, tmp_path / "plots" / "curves.png")
    assert out.read_bytes().startswith(PNG) and out.stat().st_size > 5000
    assert plot_png({"": parse_metrics([])}).startswith(PNG)  # an empty run still draws its axes


def test_out_of_distribution_scores_are_read_with_the_dev_record_and_never_as_loss_terms():
    m = parse_metrics(
        lines(
            {"event": "start", "step": 0, "steps": 40},
            {"step": 20, "ctc": 2.0},
            {
                "step": 20,
                "dev_char_accuracy": 0.5,
                "dev_line_accuracy": 0.1,
                "ood_photo": 0.25,
                "ood_scan": 0.75,
                "ood_char_accuracy": 0.5,
            },
        )
    )
    assert m.terms == ["ctc"]
    assert m.devs == [
        {
            "step": 20,
            "dev_char_accuracy": 0.5,
            "dev_line_accuracy": 0.1,
            "ood_photo": 0.25,
            "ood_scan": 0.75,
            "ood_char_accuracy": 0.5,
        }
    ]


def test_a_run_with_out_of_distribution_scores_gets_a_third_panel():
    import io

    from PIL import Image

    base = ({"event": "start", "step": 0, "steps": 40}, {"step": 20, "ctc": 2.0})
    plain = parse_metrics(lines(*base, {"step": 20, "dev_char_accuracy": 0.5}))
    with_ood = parse_metrics(lines(*base, {"step": 20, "dev_char_accuracy": 0.5, "ood_char_accuracy": 0.3}))
    width = {k: Image.open(io.BytesIO(plot_png({"run": m}))).size[0] for k, m in (("plain", plain), ("ood", with_ood))}
    assert width["ood"] > width["plain"] * 1.3
