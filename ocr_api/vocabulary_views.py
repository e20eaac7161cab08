"""A user's own vocabulary: GET and PUT /ocr/v1/vocabulary.

The words are checked as a request's hotwords are (``HotwordsField``: the same limits, the same
cleaning); the portal sends them as the ``hotwords`` of every upload.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .errors import ApiError, field_error
from .models import Vocabulary
from .serializers import ErrorResponseSerializer, HotwordsField


class VocabularySerializer(serializers.Serializer):
    words = HotwordsField(
        help_text="Your words or phrases, favoured while decoding your uploads: at most "
        "OCR_MAX_HOTWORDS, each at most OCR_HOTWORD_MAX_CHARS characters. Spaces "
        "are collapsed, empty entries dropped, repeats kept once."
    )
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="null before the first save")
    max_words = serializers.IntegerField(read_only=True, help_text="the server's limit on the number of words")
    max_word_chars = serializers.IntegerField(read_only=True, help_text="the server's limit on a word's length")


def vocabulary_payload(vocabulary: Vocabulary | None) -> dict:
    return {
        "words": vocabulary.words if vocabulary else [],
        "updated_at": vocabulary.updated_at.isoformat() if vocabulary else None,
        "max_words": settings.OCR_MAX_HOTWORDS,
        "max_word_chars": settings.OCR_HOTWORD_MAX_CHARS,
    }


def validated_words(data) -> list[str]:
    """The words of a PUT body, or a 400: ``bad_hotwords`` for bad words, ``invalid`` for a body
    that is not an object. The message is the serializer's, as POST /recognize words it."""
    serializer = VocabularySerializer(data=data)
    if serializer.is_valid():
        return serializer.validated_data["words"]
    field, message = field_error(serializer.errors)
    raise ApiError("bad_hotwords" if field == "words" else "invalid", message)


_ERRORS = {
    401: OpenApiResponse(ErrorResponseSerializer, description="not logged in, or no or bad token"),
    429: OpenApiResponse(ErrorResponseSerializer, description="throttled"),
}


class VocabularyView(APIView):
    """The caller's own vocabulary; nobody else's is reachable (staff included)."""

    @extend_schema(
        responses={200: VocabularySerializer, **_ERRORS},
        summary="Your vocabulary",
        description="The words the portal sends as hotwords with each of your uploads; empty until saved.",
    )
    def get(self, request):
        return Response(vocabulary_payload(Vocabulary.objects.filter(owner=request.user).first()))

    @extend_schema(
        request=VocabularySerializer,
        responses={
            200: VocabularySerializer,
            400: OpenApiResponse(
                ErrorResponseSerializer,
                description="bad_hotwords: too many words, a word too "
                "long or not a string; invalid: the body is not an object",
            ),
            **_ERRORS,
        },
        summary="Replace your vocabulary",
        description='Send {"words": [...]}; the whole list is replaced ([] empties it). Answers the words as '
        "stored (cleaned).",
    )
    def put(self, request):
        words = validated_words(request.data)
        vocabulary, _ = Vocabulary.objects.update_or_create(owner=request.user, defaults={"words": words})
        return Response(vocabulary_payload(vocabulary))
