from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """The web portal: templates and static JS/CSS over the public REST API."""

    name = "frontend"
    verbose_name = "Web portal"
