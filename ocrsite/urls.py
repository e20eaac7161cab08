from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language

from ocr_api.metrics import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/setlang/", set_language, name="set_language"),
    path("metrics", metrics, name="metrics"),
    path("ocr/v1/", include("ocr_api.urls")),
    path("", include("frontend.urls")),
]
