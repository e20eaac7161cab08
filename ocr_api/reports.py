"""A registered model's evaluation report and the promotion gate that reads it.

The report (``ModelVersion.report``) is written by the training queue's ``evaluate_model`` task
(``ocr_api.tasks``) when a model is registered or on demand:

    {"suite": {"clean": 99.02, "scan": 97.9, ...},   # char accuracy, %, per subset of the frozen suite
     "datasets": {"dataset 3: receipts": 91.2},      # on each dataset's held-back lines
     "ms_per_line": 5.9, "suite_dir": "...", "evaluated_at": "..."}

The gate compares a candidate with the active model subset by subset and dataset by dataset: the
candidate may read less than the active model by at most ``OCR_PROMOTION_MARGIN`` points (0.3) on
any subset or dataset both were measured on. A candidate without a report does not pass; nor does one measured on no subset the
active model was measured on. Staff may promote past the gate with a written reason; every
promotion and rollback is written to ``PromotionEvent`` with the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from .models import ModelVersion, PromotionEvent
from .registry import promote


@dataclass
class GateResult:
    passes: bool
    shortfalls: list[dict] = field(default_factory=list)  # the subsets read worse than allowed
    problem: str = ""  # why it cannot be compared: no report, no shared subset
    comparison: dict = field(default_factory=dict)  # subset -> {"candidate", "active", "delta"}

    def as_dict(self, candidate: ModelVersion, active: ModelVersion | None) -> dict:
        return {
            "passes": self.passes,
            "margin": settings.OCR_PROMOTION_MARGIN,
            "problem": self.problem,
            "shortfalls": self.shortfalls,
            "comparison": self.comparison,
            "candidate": {"id": candidate.pk, "label": candidate.label, "report": candidate.report},
            "active": {"id": active.pk, "label": active.label, "report": active.report} if active else None,
        }


def gate(candidate: ModelVersion, active: ModelVersion | None, margin: float | None = None) -> GateResult:
    """Whether ``candidate`` may replace ``active`` on the evidence of their reports."""
    margin = settings.OCR_PROMOTION_MARGIN if margin is None else margin
    mine = _scores(candidate)
    if not (candidate.report or {}).get("suite"):
        return GateResult(False, problem="the candidate has no evaluation report yet")
    if active is None or active.pk == candidate.pk:
        return GateResult(True)
    theirs = _scores(active)
    if not theirs:
        return GateResult(True, problem="the active model has no report to compare with")
    shared = sorted(set(mine) & set(theirs))
    if not shared:
        return GateResult(False, problem="the two reports share no subset")
    comparison = {
        s: {"candidate": mine[s], "active": theirs[s], "delta": round(mine[s] - theirs[s], 2)} for s in shared
    }
    shortfalls = [{"subset": s, **c} for s, c in comparison.items() if c["delta"] < -margin]
    return GateResult(not shortfalls, shortfalls, comparison=comparison)


def _scores(version: ModelVersion) -> dict[str, float]:
    """What the gate compares: each subset of the suite, each dataset, and the page suite in reading
    order (all pages: "pages")."""
    report = version.report or {}
    pages = (report.get("pages") or {}).get("in_order", {}).get("all")
    return {**(report.get("suite") or {}), **(report.get("datasets") or {}), **({"pages": pages} if pages else {})}


class GateRefused(Exception):
    def __init__(self, result: dict) -> None:
        super().__init__("gate_failed")
        self.result = result


def promote_checked(version: ModelVersion, user, reason: str = "") -> PromotionEvent:
    """Promote ``version`` if the gate lets it through, or past it when ``reason`` is given (an
    override); GateRefused otherwise. The promotion, or the refusal, and its evidence go to the
    audit log."""
    with transaction.atomic():
        active = ModelVersion.objects.select_for_update().filter(is_active=True).first()
        result = gate(version, active)
        evidence = result.as_dict(version, active)
        if result.passes or reason.strip():
            promote(version)
            return PromotionEvent.objects.create(
                action=PromotionEvent.Action.PROMOTE,
                version=version,
                previous=active,
                user=user,
                reason=reason.strip(),
                overridden=not result.passes,
                gate=evidence,
            )
    PromotionEvent.objects.create(
        action=PromotionEvent.Action.REFUSED, version=version, previous=active, user=user, gate=evidence
    )
    raise GateRefused(evidence)


def roll_back(version: ModelVersion, user, reason: str = "") -> PromotionEvent:
    """Make ``version`` (an earlier active one) active again, without the gate: a rollback is how a
    bad promotion is undone at once. Logged like a promotion."""
    with transaction.atomic():
        active = ModelVersion.objects.select_for_update().filter(is_active=True).first()
        evidence = gate(version, active).as_dict(version, active)
        promote(version)
        return PromotionEvent.objects.create(
            action=PromotionEvent.Action.ROLLBACK,
            version=version,
            previous=active,
            user=user,
            reason=reason.strip(),
            gate=evidence,
        )
