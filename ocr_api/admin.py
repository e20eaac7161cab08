from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from .models import Dataset, DistillJob, LineCorrection, ModelVersion, OcrJob, PromotionEvent
from .reports import GateRefused, promote_checked
from .training import ParamError, cancel_jobs, start_job


@admin.register(OcrJob)
class OcrJobAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "status", "cached", "model_label", "time_cost", "created_at")
    list_filter = ("status", "cached")
    search_fields = ("text_content", "filename", "owner__username")
    readonly_fields = [f.name for f in OcrJob._meta.fields]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("label", "kind", "params", "is_active", "suite_accuracy", "created_at", "promoted_at")
    list_filter = ("kind", "is_active")
    readonly_fields = ("against_active", "report")
    actions = ["promote_selected"]

    @admin.display(description="against the active model")
    def against_active(self, obj: ModelVersion) -> str:
        """The report side by side with the active model's, subset by subset, and the gate's verdict."""
        from .registry import active_model
        from .reports import gate

        if obj is None or obj.pk is None:
            return "-"
        active = active_model()
        result = gate(obj, active)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (s, f"{c['candidate']:.2f}", f"{c['active']:.2f}", f"{c['delta']:+.2f}")
                for s, c in result.comparison.items()
            ),
        )
        verdict = "passes the gate" if result.passes else "refused by the gate"
        problem = f": {result.problem}" if result.problem else ""
        return format_html(
            "<p>{} ({}){}</p><table><tr><th>subset</th><th>this model</th><th>active</th><th>delta</th></tr>{}</table>",
            verdict,
            f"active: {active.label}" if active else "no active model",
            problem,
            rows,
        )

    @admin.display(description="report (char accuracy %)")
    def suite_accuracy(self, obj: ModelVersion) -> str:
        suite = (obj.report or {}).get("suite") or {}
        return " / ".join(f"{k} {v:.2f}" for k, v in suite.items()) or (obj.report or {}).get("error", "none yet")

    @admin.action(description="Promote through the gate (workers switch within seconds)")
    def promote_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", level=messages.ERROR)
            return
        version = queryset.get()
        try:
            promote_checked(version, request.user)
        except GateRefused as refused:
            worse = ", ".join(f"{s['subset']} {s['delta']:+.2f}" for s in refused.result["shortfalls"])
            why = refused.result["problem"] or f"it reads worse than the active model ({worse})"
            self.message_user(
                request,
                f"{version.label} was not promoted: {why}. To promote it anyway, POST "
                f"/ocr/v1/models/{version.pk}/promote with an override_reason.",
                level=messages.ERROR,
            )
            return
        self.message_user(request, f"{version.label} is now active.")


@admin.register(PromotionEvent)
class PromotionEventAdmin(admin.ModelAdmin):
    """The audit log: read only."""

    list_display = ("created_at", "action", "version", "previous", "user", "overridden", "reason")
    list_filter = ("action", "overridden")
    readonly_fields = [f.name for f in PromotionEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DistillJob)
class DistillJobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "step", "created_by", "created_at", "finished_at")
    list_filter = ("kind", "status")
    actions = ["cancel_selected"]
    live_fields = (
        "status",
        "progress_summary",
        "curves",
        "error_message",
        "checkpoint_path",
        "result_model",
        "log_tail",
        "created_by",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )

    def get_fields(self, request, obj=None):
        return ("kind", "params") if obj is None else ("kind", "params", *self.live_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("kind", "params", *self.live_fields)

    @admin.display(description="progress")
    def progress_summary(self, obj):
        p = obj.progress or {}
        losses = ", ".join(f"{k} {v:.4g}" for k, v in (p.get("losses") or {}).items())
        acc = p.get("dev_char_accuracy")
        eta = p.get("eta_s")
        return (
            f"step {p.get('step', 0)}/{p.get('steps', '?')}; {losses or 'no loss yet'}; "
            f"dev char accuracy {acc if acc is not None else '-'}; ETA {eta if eta is not None else '-'} s"
        )

    @admin.display(description="curves")
    def curves(self, obj):
        if not obj.curves_png:
            return "-"
        url = reverse("ocr_api:distill-job-curves", args=[obj.pk])
        return format_html('<img src="{}" alt="loss and accuracy curves" style="max-width:100%">', url)

    @admin.display(description="step")
    def step(self, obj):
        p = obj.progress or {}
        return f"{p.get('step', 0)}/{p.get('steps', '?')}"

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            start_job(obj, request.user)
        except ParamError as exc:
            self.message_user(request, f"Not started: {exc}", level=messages.ERROR)

    @admin.action(description="Cancel")
    def cancel_selected(self, request, queryset):
        asked = cancel_jobs(queryset)
        self.message_user(request, f"Cancel requested for {asked} job(s).")


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "lines", "created_by", "created_at")
    readonly_fields = ("report", "characters_outside_charset")


@admin.register(LineCorrection)
class LineCorrectionAdmin(admin.ModelAdmin):
    list_display = ("job", "line_index", "original_text", "corrected_text", "corrected_by", "updated_at")
