from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from . import batch_views, exports, health, views, vocabulary_views, webhook_views
from . import lifecycle_views as lifecycle

app_name = "ocr_api"

urlpatterns = [
    path("health", health.health, name="health"),
    path("recognize", views.RecognizeView.as_view(), name="recognize"),
    path("jobs", views.JobListView.as_view(), name="job-list"),
    path("jobs/<uuid:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<uuid:job_id>/image", views.JobImageView.as_view(), name="job-image"),
    path("jobs/<uuid:job_id>/export", exports.JobExportView.as_view(), name="job-export"),
    path("jobs/<uuid:job_id>/pages/<int:page>", exports.JobPageView.as_view(), name="job-page"),
    path(
        "jobs/<uuid:job_id>/lines/<int:line>/correction", lifecycle.LineCorrectionView.as_view(), name="line-correction"
    ),
    path("batches", batch_views.BatchCreateView.as_view(), name="batch-list"),
    path("batches/<uuid:batch_id>", batch_views.BatchDetailView.as_view(), name="batch-detail"),
    path("vocabulary", vocabulary_views.VocabularyView.as_view(), name="vocabulary"),
    path("webhooks", webhook_views.WebhookListView.as_view(), name="webhook-list"),
    path("webhooks/<int:pk>", webhook_views.WebhookDetailView.as_view(), name="webhook-detail"),
    path("webhooks/<int:pk>/deliveries", webhook_views.WebhookDeliveryListView.as_view(), name="webhook-deliveries"),
    path("distill-jobs", lifecycle.DistillJobListCreateView.as_view(), name="distill-job-list"),
    path("distill-jobs/<int:pk>", lifecycle.DistillJobDetailView.as_view(), name="distill-job-detail"),
    path("distill-jobs/<int:pk>/cancel", lifecycle.DistillJobCancelView.as_view(), name="distill-job-cancel"),
    path("distill-jobs/<int:pk>/curves.png", lifecycle.DistillJobCurvesView.as_view(), name="distill-job-curves"),
    path("models", lifecycle.ModelListView.as_view(), name="model-list"),
    path("models/rollback", lifecycle.ModelRollbackView.as_view(), name="model-rollback"),
    path("models/<int:pk>/promote", lifecycle.ModelPromoteView.as_view(), name="model-promote"),
    path("models/<int:pk>/report", lifecycle.ModelReportView.as_view(), name="model-report"),
    path("models/<int:pk>/evaluate", lifecycle.ModelEvaluateView.as_view(), name="model-evaluate"),
    path("datasets", lifecycle.DatasetListCreateView.as_view(), name="dataset-list"),
    path("datasets/from-jobs", lifecycle.DatasetFromJobsView.as_view(), name="dataset-from-jobs"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="ocr_api:schema"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="ocr_api:schema"), name="redoc"),
]
