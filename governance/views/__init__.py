"""The governance pages of the console, one module per page. Every view fetches through
``visible_to(user)``, so what a page shows is decided here and in the models, never in a template;
the objects a row refers to are printed with ``{% ref %}`` (``console.visibility``), which asks the
same ``visible_to``; every change goes through ``governance.services``."""
