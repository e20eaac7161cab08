from django.contrib import admin

from .models import DistillJob, ModelVersion, OcrJob


@admin.register(OcrJob)
class OcrJobAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "status", "cached", "model_label", "time_cost", "created_at")
    list_filter = ("status", "cached")
    search_fields = ("text_content", "filename", "owner__username")
    exclude = ("image",)
    readonly_fields = [f.name for f in OcrJob._meta.fields if f.name != "image"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("label", "kind", "params", "size_bytes", "is_active", "created_at", "promoted_at")
    list_filter = ("kind", "is_active")


@admin.register(DistillJob)
class DistillJobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "created_by", "created_at", "finished_at")
    list_filter = ("kind", "status")
