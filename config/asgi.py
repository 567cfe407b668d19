from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from console.checks import refuse_to_serve_if_broken

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()
# A web process that could only half work (e.g. no collected static files with DEBUG off) refuses to start.
refuse_to_serve_if_broken()
