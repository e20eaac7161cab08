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


def _not_found(request, exception):
    """A path under the API that matches nothing (a malformed id included) answers as the API's
    other errors do, in JSON; the portal keeps Django's page."""
    if request.path.startswith("/ocr/v1/"):
        from django.http import JsonResponse

        body = {"success": False, "error": {"code": "not_found", "message": "No such resource."}}
        return JsonResponse(body, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


handler404 = _not_found
