"""The webhook API (docs/api.md, "Webhooks"): a client registers callback URLs for its own jobs and
reads their delivery log; staff see every client's."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, mixins, serializers, status
from rest_framework.response import Response

from . import webhooks
from .errors import ApiError, field_error
from .models import Webhook, WebhookDelivery
from .serializers import ErrorResponseSerializer


class WebhookSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=webhooks.EVENTS),
        required=False,
        allow_empty=False,
        min_length=1,
        help_text="the events to send (default: both)",
    )
    secret = serializers.CharField(
        read_only=True, help_text="the key the signature (OCR-Signature) is made with: keep it on your side"
    )

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "secret", "active", "owner", "created_at"]
        read_only_fields = ["id", "secret", "owner", "created_at"]


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "job_id",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "created_at",
            "next_attempt_at",
            "delivered_at",
        ]


def _visible(user):
    hooks = Webhook.objects.select_related("owner")
    return hooks if user.is_staff else hooks.filter(owner=user)


_REFUSED = OpenApiResponse(
    ErrorResponseSerializer, description="`webhook_url_refused`: not http(s), does not resolve, or not public"
)


def _vetted(url: str) -> str:
    try:
        webhooks.vet(url)
    except webhooks.Refused as exc:
        raise ApiError("webhook_url_refused", f"{url}: {exc}.") from None
    return url


class WebhookListView(generics.ListCreateAPIView):
    serializer_class = WebhookSerializer

    def get_queryset(self):
        return _visible(self.request.user)

    @extend_schema(responses={201: WebhookSerializer, 400: _REFUSED}, summary="Register a callback URL")
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            raise ApiError("invalid", field_error(serializer.errors)[1])
        url = _vetted(serializer.validated_data["url"])
        hook = Webhook.objects.create(
            owner=request.user,
            url=url,
            events=serializer.validated_data.get("events") or list(webhooks.EVENTS),
            secret=webhooks.new_secret(),
            active=serializer.validated_data.get("active", True),
        )
        return Response(WebhookSerializer(hook).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, generics.GenericAPIView):
    serializer_class = WebhookSerializer

    def get_queryset(self):
        return _visible(self.request.user)

    def get(self, request, *args, **kwargs):
        return self.retrieve(request, *args, **kwargs)

    def delete(self, request, *args, **kwargs):
        return self.destroy(request, *args, **kwargs)


class WebhookDeliveryListView(generics.ListAPIView):
    """The webhook's delivery log, newest first: every event, its attempts and the last answer."""

    serializer_class = DeliverySerializer

    def get_queryset(self):
        hook = generics.get_object_or_404(_visible(self.request.user), pk=self.kwargs["pk"])
        return hook.deliveries.all()
