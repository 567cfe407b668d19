"""The console and API toolkit every app's pages and API share.

Model-free: it imports none of Custos's apps (``governance``, ``reviews``, ``audit``, ``demo``), so any of
them may use it. What it knows of users it learns by duck typing (``user.groups``, ``user.is_agent``).
"""
