"""``manage.py demo_mcp_server``: the demo's MCP server (``demo.mcp_server``) over streamable HTTP,
behind ``custos_mcp.CustosMiddleware``, at the URI the demo registered it under (``seed_demo --mcp-url``).

``make run`` starts it beside the console. It reads from Django only where it is registered and who
issues tokens; everything else goes through Custos's HTTP endpoints, as any MCP server's would.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.mcp_server import RESOURCE, build
from governance.models import Resource


class Command(BaseCommand):
    help = "Serve the demo MCP server (support tools) behind the Custos middleware."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--custos-url", default="http://127.0.0.1:8000", help="Where Custos is served.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            import uvicorn

            from custos_mcp import CustosMiddleware
        except ImportError as exc:
            raise CommandError(
                f"the demo MCP server needs fastmcp: pip install -r requirements-demo.txt ({exc})"
            ) from None
        uri = Resource.objects.filter(name=RESOURCE).values_list("uri", flat=True).first()
        if not uri:
            raise CommandError(f"{RESOURCE} is not registered: run manage.py seed_demo --mcp-url URL first")
        where = urlsplit(uri)
        middleware = CustosMiddleware(
            custos_url=options["custos_url"],
            issuer=settings.CUSTOS_ISSUER,
            resource=RESOURCE,
            resource_uri=uri,
        )
        app = build(middleware).http_app(path=where.path or "/mcp")
        self.stdout.write(f"serving {RESOURCE} at {uri}, every call checked by Custos at {options['custos_url']}")
        server = uvicorn.Server(
            uvicorn.Config(app, host=where.hostname or "127.0.0.1", port=where.port or 80, log_level="warning")
        )
        server.run()
