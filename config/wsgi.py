from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

# Imported once the apps are loaded (get_wsgi_application sets Django up).
from console.checks import refuse_to_serve_if_broken  # noqa: E402
from governance.api.check_wsgi import CheckFastPath  # noqa: E402

# The runtime check's hot path, answered before Django's middleware; everything else is Django's.
application = CheckFastPath(django_application)
# A web process that could only half work (e.g. no collected static files with DEBUG off) refuses to start.
refuse_to_serve_if_broken()
