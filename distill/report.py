"""Plot training loss and dev accuracy curves from runs' ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir: str | Path) -> tuple[list[dict], list[dict]]:
    losses, devs = [], []
    for line in (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("event") == "start" and rec.get("step") == 0:
            losses, devs = [], []  # a fresh (not resumed) run starts over
        if "total" in rec:
            losses.append(rec)
        elif "dev_char_accuracy" in rec:
            devs.append(rec)
    return losses, devs


def plot_runs(runs: dict[str, str | Path], out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, run_dir in runs.items():
        losses, devs = read_metrics(run_dir)
        if losses:
            ax_loss.plot([r["step"] for r in losses], [r["ctc"] for r in losses], label=f"{label} CTC")
            if "kd" in losses[0]:
                ax_loss.plot([r["step"] for r in losses], [r["kd"] for r in losses], "--", label=f"{label} KD")
        if devs:
            ax_acc.plot([r["step"] for r in devs], [100 * r["dev_char_accuracy"] for r in devs], "o-", label=label)
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="training loss")
    ax_acc.set(xlabel="step", ylabel="dev char accuracy (%)", title="dev char accuracy (held-out fonts and texts)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
