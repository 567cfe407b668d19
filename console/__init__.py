"""The console and API toolkit every app's pages and API share.

Model-free: it imports none of Custos's apps (``governance``, ``reviews``, ``audit``, ``demo``), so any of
them may use it. What it knows of users and models it learns by duck typing (``user.groups``,
``user.is_agent``, a model's ``objects.visible_to(user)`` and ``get_absolute_url()``).
"""
