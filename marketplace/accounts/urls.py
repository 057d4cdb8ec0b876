"""The URLs of accounts (sign-up, organizations, invitations and API keys): ``urlpatterns`` are
portal pages, included at the site root by ``marketplace/urls.py``; ``api_urlpatterns`` are API
operations, included under ``/api/v1/`` by ``marketplace/api/urls.py``."""

from django.urls import path

from marketplace.accounts import api as accounts_api
from marketplace.accounts import views as accounts_views

urlpatterns = [
    path("accounts/signup/", accounts_views.signup, name="signup"),
    path("orgs/new/", accounts_views.organization_create, name="organization-create"),
    path("orgs/<uuid:org_id>/", accounts_views.organization_detail, name="organization"),
    path(
        "orgs/<uuid:org_id>/switch/", accounts_views.organization_switch, name="organization-switch"
    ),
    path(
        "orgs/<uuid:org_id>/invitations/",
        accounts_views.invitation_create,
        name="invitation-create",
    ),
    path("orgs/<uuid:org_id>/api-keys/", accounts_views.api_key_create, name="api-key-create"),
    path(
        "orgs/<uuid:org_id>/api-keys/<uuid:key_id>/revoke/",
        accounts_views.api_key_revoke,
        name="api-key-revoke",
    ),
    path("invitations/<str:token>/", accounts_views.invitation_accept, name="invitation-accept"),
]

api_urlpatterns = [
    path("me", accounts_api.MeView.as_view(), name="api-me"),
    path("organizations", accounts_api.OrganizationListCreate.as_view(), name="api-organizations"),
    path(
        "organizations/<str:organization_id>",
        accounts_api.OrganizationDetail.as_view(),
        name="api-organization",
    ),
    path(
        "organizations/<str:organization_id>/members",
        accounts_api.MemberList.as_view(),
        name="api-members",
    ),
    path(
        "organizations/<str:organization_id>/invitations",
        accounts_api.InvitationCreate.as_view(),
        name="api-invitations",
    ),
    path("api-keys", accounts_api.ApiKeyListCreate.as_view(), name="api-keys"),
    path(
        "api-keys/<str:key_id>/revoke", accounts_api.ApiKeyRevoke.as_view(), name="api-key-revoke"
    ),
]
