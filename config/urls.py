from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from governance import oauth_views
from governance.api.check import CheckApi
from governance.api.health import HealthApi

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/check", CheckApi.as_view(), name="check"),
    path("api/v1/health", HealthApi.as_view(), name="health"),
    path("api/v1/", include("governance.api.urls")),
    path("oauth/token", oauth_views.token, name="oauth-token"),
    path("oauth/introspect", oauth_views.introspect, name="oauth-introspect"),
    path("oauth/revoke", oauth_views.revoke, name="oauth-revoke"),
    path(".well-known/jwks.json", oauth_views.jwks, name="jwks"),
    path(".well-known/oauth-authorization-server", oauth_views.metadata, name="oauth-metadata"),
    path("", include("governance.urls")),
]
