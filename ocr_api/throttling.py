"""Per-user request throttling; the rate is read from settings when a request arrives."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class UserBurstThrottle(SimpleRateThrottle):
    scope = "user"

    def get_rate(self):
        per_minute = settings.OCR_THROTTLE_PER_MINUTE
        return f"{per_minute}/min" if per_minute else None

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        ident = request.user.pk if request.user and request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
