from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class JobPagination(PageNumberPagination):
    """Pages of 20 (``page_size`` 1 to 100). A ``page_size`` that is not such a number is refused
    (400), not silently replaced by the default; a ``page`` past the end is 404."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise ValidationError({"page_size": f"must be a whole number from 1 to {self.max_page_size}"}) from None
        if not 1 <= size <= self.max_page_size:
            raise ValidationError({"page_size": f"must be a whole number from 1 to {self.max_page_size}"})
        return size

    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        for param in params:
            if param["name"] == self.page_size_query_param:
                param["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            if param["name"] == self.page_query_param:
                param["schema"] = {"type": "integer", "minimum": 1}
        return params
