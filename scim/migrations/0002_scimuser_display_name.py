from __future__ import annotations

from typing import Any

from django.db import migrations, models


def backfill(apps: Any, schema_editor: Any) -> None:
    # Until now displayName was answered from Human.name: keep answering what the IdP last read.
    ScimUser = apps.get_model("scim", "ScimUser")
    for row in ScimUser.objects.select_related("human").iterator():
        row.display_name = row.human.name[:200]
        row.save(update_fields=["display_name"])


class Migration(migrations.Migration):
    dependencies = [
        ("scim", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="scimuser",
            name="display_name",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
