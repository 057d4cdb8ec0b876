"""The site's URLs: each domain's portal pages (from its ``urls.py``), health probes, the auth
views, the admin, and the API with its schema and docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from marketplace.accounts import urls as accounts
from marketplace.core import health
from marketplace.leases import urls as leases
from marketplace.portal import views as portal_views
from marketplace.trading import urls as trading

urlpatterns = [
    path("", portal_views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    *accounts.urlpatterns,  # its sign-up page before the auth views under the same prefix
    path("accounts/", include("django.contrib.auth.urls")),
    *trading.urlpatterns,
    *leases.urlpatterns,
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
