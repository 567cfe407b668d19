# Fewer writes per append and per seal: the digest's and the seal hash's uniqueness kept as constraints
# without the LIKE-pattern index unique=True adds on PostgreSQL, and no foreign-key check (which locks,
# and so writes to, the event's row) from the sealer's queue and the seals to the events.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0007_checkpoints'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='digest',
            field=models.CharField(editable=False, max_length=64),
        ),
        migrations.AlterField(
            model_name='pendingseal',
            name='event',
            field=models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='+', serialize=False, to='audit.auditevent'),
        ),
        migrations.AlterField(
            model_name='seal',
            name='event',
            field=models.OneToOneField(db_constraint=False, editable=False, on_delete=django.db.models.deletion.PROTECT, related_name='seal', to='audit.auditevent'),
        ),
        migrations.AlterField(
            model_name='seal',
            name='hash',
            field=models.CharField(editable=False, max_length=64),
        ),
        migrations.AddConstraint(
            model_name='auditevent',
            constraint=models.UniqueConstraint(fields=('digest',), name='audit_event_digest_unique'),
        ),
        migrations.AddConstraint(
            model_name='seal',
            constraint=models.UniqueConstraint(fields=('hash',), name='audit_seal_hash_unique'),
        ),
    ]
