"""Where everything is mounted. Each app brings its console pages and its part of API v1; the console
pages share the ``console`` namespace and API v1 the ``api`` namespace, whichever app they come from."""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

import audit.api_urls
import audit.urls
import custody.api_urls
import custody.urls
import governance.api.urls
import governance.urls
import reviews.api_urls
import reviews.urls
import scim.api_urls
import scim.urls
from governance import oauth_views
from governance.api.check import CheckApi
from governance.api.health import HealthApi
from governance.logins import LoginView

# Swagger UI's page carries a <style> block and sets styles inline: the one page allowed them.
_CSP = cast(dict[str, list[str]], settings.SECURE_CSP)
DOCS_CSP: dict[str, list[str]] = {**_CSP, "style-src": [CSP.SELF, CSP.UNSAFE_INLINE]}
api_docs = csp_override(DOCS_CSP)(SpectacularSwaggerSplitView.as_view(url_name="api-schema"))

# Every API v1 endpoint under /api/v1/ but the check and the health probe (which take no console user).
api_v1_patterns: list[URLPattern | URLResolver] = [
    *governance.api.urls.urlpatterns,
    *reviews.api_urls.urlpatterns,
    *custody.api_urls.urlpatterns,
    *audit.api_urls.urlpatterns,
]
console_patterns: list[URLPattern | URLResolver] = [
    *governance.urls.urlpatterns,
    *reviews.urls.urlpatterns,
    *scim.urls.urlpatterns,
    *custody.urls.urlpatterns,
    *audit.urls.urlpatterns,
]

urlpatterns = [
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("api/v1/check", CheckApi.as_view(), name="check"),
    path("api/v1/health", HealthApi.as_view(), name="health"),
    path("api/v1/", include((api_v1_patterns, "api"))),
    path("oauth/token", oauth_views.token, name="oauth-token"),
    path("oauth/introspect", oauth_views.introspect, name="oauth-introspect"),
    path("oauth/revoke", oauth_views.revoke, name="oauth-revoke"),
    path(".well-known/jwks.json", oauth_views.jwks, name="jwks"),
    path(".well-known/oauth-authorization-server", oauth_views.metadata, name="oauth-metadata"),
    path("scim/v2/", include((scim.api_urls.urlpatterns, "scim"))),
    path("", include((console_patterns, "console"))),
]

# API paths answer errors in JSON ({code, detail, fields}); the console's pages elsewhere.
handler400 = "console.error_pages.bad_request"
handler403 = "console.error_pages.permission_denied"
handler404 = "console.error_pages.not_found"
handler500 = "console.error_pages.server_error"
