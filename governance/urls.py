from __future__ import annotations

from django.urls import path

from governance import views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
]
