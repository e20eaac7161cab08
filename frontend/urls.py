from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.i18n import JavaScriptCatalog

from . import views

app_name = "frontend"

urlpatterns = [
    path("", views.PortalView.as_view(active_tab="upload"), name="portal"),
    path("history/", views.PortalView.as_view(active_tab="history"), name="history"),
    path("vocabulary/", views.PortalView.as_view(active_tab="vocabulary"), name="vocabulary"),
    path("models/", views.StaffPortalView.as_view(), name="models"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="frontend/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    # the scripts' strings in the active language (frontend/locale/*/LC_MESSAGES/djangojs.po)
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["frontend"]), name="jsi18n"),
]
