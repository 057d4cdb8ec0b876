from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from marketplace import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("orgs/new/", views.organization_create, name="organization-create"),
    path("orgs/<uuid:org_id>/", views.organization_detail, name="organization"),
    path("orgs/<uuid:org_id>/switch/", views.organization_switch, name="organization-switch"),
    path("orgs/<uuid:org_id>/invitations/", views.invitation_create, name="invitation-create"),
    path("orgs/<uuid:org_id>/api-keys/", views.api_key_create, name="api-key-create"),
    path(
        "orgs/<uuid:org_id>/api-keys/<uuid:key_id>/revoke/",
        views.api_key_revoke,
        name="api-key-revoke",
    ),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
