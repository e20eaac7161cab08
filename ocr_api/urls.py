from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from . import views

app_name = "ocr_api"

urlpatterns = [
    path("recognize", views.RecognizeView.as_view(), name="recognize"),
    path("jobs", views.JobListView.as_view(), name="job-list"),
    path("jobs/<uuid:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<uuid:job_id>/image", views.JobImageView.as_view(), name="job-image"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="ocr_api:schema"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="ocr_api:schema"), name="redoc"),
]
