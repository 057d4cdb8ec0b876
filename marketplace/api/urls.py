from django.urls import path

from marketplace.api import views

urlpatterns = [
    path("me", views.MeView.as_view(), name="api-me"),
    path("organizations", views.OrganizationListCreate.as_view(), name="api-organizations"),
    path(
        "organizations/<str:organization_id>",
        views.OrganizationDetail.as_view(),
        name="api-organization",
    ),
    path(
        "organizations/<str:organization_id>/members",
        views.MemberList.as_view(),
        name="api-members",
    ),
    path(
        "organizations/<str:organization_id>/invitations",
        views.InvitationCreate.as_view(),
        name="api-invitations",
    ),
    path("api-keys", views.ApiKeyListCreate.as_view(), name="api-keys"),
    path("api-keys/<str:key_id>/revoke", views.ApiKeyRevoke.as_view(), name="api-key-revoke"),
]
