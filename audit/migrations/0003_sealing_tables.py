"""Writers stop waiting on the chain (1/3): the tables for sealing in batches.

Events get their content digest (their public id), the canonical bytes it is taken over, and a nonce; a seal table and the sealer's queue
appear; the chain head keeps only the last seal.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("audit", "0002_append_only")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="digest",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="canonical",
            field=models.TextField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="nonce",
            field=models.CharField(blank=True, default="", editable=False, max_length=32),
        ),
        migrations.CreateModel(
            name="Seal",
            fields=[
                ("seq", models.BigIntegerField(primary_key=True, serialize=False)),
                ("prev_hash", models.CharField(editable=False, max_length=64)),
                ("hash", models.CharField(editable=False, max_length=64, unique=True)),
                ("sealed_at", models.DateTimeField(editable=False)),
                (
                    "event",
                    models.OneToOneField(
                        editable=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="seal",
                        to="audit.auditevent",
                    ),
                ),
            ],
            options={
                "ordering": ["seq"],
                "constraints": [models.CheckConstraint(condition=models.Q(("seq__gte", 1)), name="audit_seal_seq_positive")],
            },
        ),
        migrations.CreateModel(
            name="PendingSeal",
            fields=[
                (
                    "event",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="audit.auditevent",
                    ),
                ),
                ("digest", models.CharField(max_length=64)),
                ("occurred_at", models.DateTimeField()),
            ],
        ),
        migrations.AddField(
            model_name="chainhead",
            name="sealed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
