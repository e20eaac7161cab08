"""Page views. They render the shell only: every piece of OCR data reaches the
browser through the public REST API (/ocr/v1/...), fetched by the scripts."""

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import LogoutView
from django.core.exceptions import PermissionDenied
from django.shortcuts import resolve_url
from django.views.generic import TemplateView

# Where the public REST API lives; the scripts build every request from it.
API_ROOT = "/ocr/v1/"


def max_upload_bytes() -> int:
    """The server's image size limit, for the scripts' early check; the API stays the authority (413)."""
    value = settings.OCR_MAX_IMAGE_BYTES
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"OCR_MAX_IMAGE_BYTES must be a positive int, got {value!r}")
    return value


class PortalView(LoginRequiredMixin, TemplateView):
    """The single-page portal; ``active_tab`` (upload, history, vocabulary, models) picks which section shows first."""

    template_name = "frontend/portal.html"
    active_tab = "upload"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["active_tab"] = self.active_tab
        context["portal_config"] = {
            "apiRoot": API_ROOT,
            "maxUploadBytes": max_upload_bytes(),
            "isStaff": self.request.user.is_staff,
            "username": self.request.user.get_username(),
            "activeTab": self.active_tab,
            "loginUrl": resolve_url(settings.LOGIN_URL),
        }
        return context


class StaffPortalView(PortalView):
    """The portal with the staff-only models tab first; 403 for other users."""

    active_tab = "models"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not request.user.is_staff:
            raise PermissionDenied("staff only")
        return super().dispatch(request, *args, **kwargs)


class PortalLogoutView(LogoutView):
    """Django's logout (POST only), landing on the login page with a "logged out" note."""

    def get_default_redirect_url(self):
        return f"{resolve_url('frontend:login')}?logged_out=1"
