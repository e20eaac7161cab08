"""A training run's ``metrics.jsonl``: the one reader and the one plotter.

``python -m distill plot`` and the platform's training jobs (``ocr_api.training``) both use this
module, so it imports no torch (matplotlib only when drawing).

The trainer writes one JSON object per line: ``{"event": "start", "step": s, "steps": n, ...}``
when it starts or resumes at step ``s``, loss records ``{"step", "lr", "sec", <terms>}``, dev
records ``{"step", "dev_char_accuracy", "dev_line_accuracy"}`` (with ``ood_<subset>`` and
``ood_char_accuracy`` where the run scores out-of-distribution folders too) and ``{"event": "done"}``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

# keys of a loss record that are not loss terms
NOT_TERMS = ("step", "event", "lr", "sec", "elapsed_s")


@dataclass
class Metrics:
    steps: int = 0  # the run's planned total
    step: int = 0  # the latest step logged
    losses: list[dict] = field(default_factory=list)  # {"step", <term>: value, ...}
    devs: list[dict] = field(default_factory=list)  # {"step", "dev_char_accuracy", "dev_line_accuracy", "ood_..."}

    @property
    def terms(self) -> list[str]:
        """Loss term names in the order the trainer logs them."""
        seen: dict[str, None] = {}
        for rec in self.losses:
            seen.update((k, None) for k in rec if k != "step")
        return list(seen)


def loss_terms(rec: dict) -> dict:
    return {
        k: v
        for k, v in rec.items()
        if k not in NOT_TERMS and not k.startswith(("dev_", "ood_")) and isinstance(v, (int, float))
    }


def parse_metrics(lines) -> Metrics:
    """Fold metrics lines into a ``Metrics``. A start event at step ``s`` drops what was logged
    after ``s``: a resumed run redoes those steps, a fresh run (``s`` = 0) starts over. Lines that
    are not JSON objects (one being written) are skipped."""
    m = Metrics()
    for raw in lines:
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), (int, float)):
            continue
        step = int(rec["step"])
        if rec.get("event") == "start":
            m.steps = int(rec.get("steps", m.steps))
            m.losses = [r for r in m.losses if r["step"] <= step]
            m.devs = [r for r in m.devs if r["step"] <= step]
            m.step = max([step] + [r["step"] for r in m.losses + m.devs])
            continue
        m.step = max(m.step, step)
        if "dev_char_accuracy" in rec or "ood_char_accuracy" in rec:  # a run may score only one kind
            m.devs.append(
                {
                    "step": step,
                    "dev_char_accuracy": rec.get("dev_char_accuracy"),
                    "dev_line_accuracy": rec.get("dev_line_accuracy"),
                    **{k: v for k, v in rec.items() if k.startswith("ood_")},
                }
            )
        terms = loss_terms(rec)
        if terms and "event" not in rec:
            m.losses.append({"step": step, **terms})
    return m


def read_metrics(path: str | Path) -> Metrics:
    """A run folder's (or a file's) metrics; an empty ``Metrics`` when there is none yet."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        return Metrics()
    return parse_metrics(path.read_text(encoding="utf-8", errors="replace").splitlines())


def plot_png(runs: dict[str, Metrics], terms: tuple[str, ...] | None = None, size=(12, 4.5), dpi: int = 110) -> bytes:
    """Training loss terms (``terms``, or all) and dev char accuracy against steps, one pair of
    panels for every run together, as PNG bytes; a third panel, the mean char accuracy on the
    out-of-distribution samples, where any run logged it. A run labelled "" names its curves by
    term only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_ood = any("ood_char_accuracy" in r for m in runs.values() for r in m.devs)
    fig, axes = plt.subplots(1, 3 if with_ood else 2, figsize=(size[0] * 1.4, size[1]) if with_ood else size, dpi=dpi)
    ax_loss, ax_acc = axes[0], axes[1]
    for label, m in runs.items():
        for term in m.terms if terms is None else [t for t in terms if t in m.terms]:
            pts = [(r["step"], r[term]) for r in m.losses if term in r]
            ax_loss.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{label} {term}".strip())
        dev = [r for r in m.devs if r["dev_char_accuracy"] is not None]
        if dev:
            ax_acc.plot(
                [r["step"] for r in dev], [100 * r["dev_char_accuracy"] for r in dev], "o-", label=label or "dev"
            )
        ood = [r for r in m.devs if "ood_char_accuracy" in r]
        if with_ood and ood:
            axes[2].plot(
                [r["step"] for r in ood],
                [100 * r["ood_char_accuracy"] for r in ood],
                "o-",
                label=label or "out-of-distribution",
            )
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="training loss")
    ax_acc.set(
        xlabel="step",
        ylabel="dev char accuracy (%)",
        ylim=(0, 100),
        title="dev char accuracy (held-out fonts and texts)",
    )
    if with_ood:
        axes[2].set(
            xlabel="step",
            ylabel="char accuracy (%)",
            ylim=(0, 100),
            title="out-of-distribution suite (mean of its subsets' samples)",
        )
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def plot_runs(runs: dict[str, str | Path], out: str | Path) -> Path:
    """``python -m distill plot``: the CTC and KD curves and dev accuracy of several run folders."""
    png = plot_png({label: read_metrics(run_dir) for label, run_dir in runs.items()}, terms=("ctc", "kd"))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    return out
