"""Campaigns and review items arrive with the reviews issue; the app exists so the layout is stable."""

from __future__ import annotations
