"""The URLs of notifications (webhook endpoints): ``api_urlpatterns`` are API operations, included
under ``/api/v1/`` by ``marketplace/api/urls.py``. There are no portal pages yet."""

from django.urls import path

from marketplace.notifications import api as notifications_api

api_urlpatterns = [
    path("webhooks", notifications_api.WebhookList.as_view(), name="api-webhooks"),
    path(
        "webhooks/<str:endpoint_id>/disable",
        notifications_api.WebhookDisable.as_view(),
        name="api-webhook-disable",
    ),
]
