"""Writer processes for the concurrency tests: each is a separate interpreter with its own database
connection (``DATABASE_URL``), as production's web and worker processes are.

Each prints ``ready`` once Django is set up, waits for a line on stdin (so all writers start together),
does its work in separate transactions and prints one JSON summary line.

    python -m tests.audit.writers append --events 40 --label w1 --hold-every 5 --hold-ms 20
    python -m tests.audit.writers delegate --parent 7 --agents 3,4,5 --hold-ms 20
    python -m tests.audit.writers revoke --delegation 7 --after-ms 150
    python -m tests.audit.writers seal --idle-ms 20      # the sealer, until killed or stdin closes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _wait_for_go() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def append(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import transaction

    from audit.services import Actor, Target, audit_append

    digests = []
    for i in range(args.events):
        with transaction.atomic():
            event = audit_append(
                actor=Actor.system(args.label),
                action="test.concurrent",
                target=Target(type="writer", id=args.label),
                context={"writer": args.label, "i": i},
            )
            # Some writers keep their transaction open a little longer, as a slow request would: their
            # events become visible later than others appended after them.
            if args.hold_every and i % args.hold_every == 0:
                time.sleep(args.hold_ms / 1000)
        digests.append(event.digest)
    return {"label": args.label, "digests": digests}


def seal(args: argparse.Namespace) -> dict[str, Any]:
    import threading

    from audit import sealer

    stop = threading.Event()
    # Stops when the test closes our stdin (or kills us).
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    sealer.run(idle_seconds=args.idle_ms / 1000, stop=stop)
    return {"stopped": True}


def delegate(args: argparse.Namespace) -> dict[str, Any]:
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from audit.services import Actor
    from console.errors import ValidationFailed
    from governance.models import Agent, Delegation
    from governance.services import delegation_create

    created, refused = [], []
    for agent_id in (int(a) for a in args.agents.split(",")):
        parent = Delegation.objects.get(pk=args.parent)
        try:
            with transaction.atomic():
                link = delegation_create(
                    actor=Actor.system("delegator"),
                    delegate=Agent.objects.get(pk=agent_id),
                    parent=parent,
                    scopes=parent.scopes,
                    expires_at=min(parent.expires_at, timezone.now() + timedelta(hours=1)),
                    purpose="concurrency test",
                    max_depth=max(parent.max_depth - 1, 0),
                )
                # Hold the parent's row lock a while, so a concurrent revocation has to wait for us.
                time.sleep(args.hold_ms / 1000)
            created.append(link.pk)
        except ValidationFailed as exc:
            refused.append(exc.code)
    return {"created": created, "refused": refused}


def revoke(args: argparse.Namespace) -> dict[str, Any]:
    from audit.services import Actor
    from governance.models import Delegation
    from governance.services import delegation_revoke

    time.sleep(args.after_ms / 1000)
    links = delegation_revoke(actor=Actor.system("revoker"), delegation=Delegation.objects.get(pk=args.delegation))
    return {"revoked": [link.pk for link in links]}


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("append")
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--hold-every", type=int, default=0)
    p.add_argument("--hold-ms", type=float, default=0)
    p = commands.add_parser("delegate")
    p.add_argument("--parent", type=int, required=True)
    p.add_argument("--agents", required=True)
    p.add_argument("--hold-ms", type=float, default=0)
    p = commands.add_parser("seal")
    p.add_argument("--idle-ms", type=float, default=20)
    p = commands.add_parser("revoke")
    p.add_argument("--delegation", type=int, required=True)
    p.add_argument("--after-ms", type=float, default=0)
    args = parser.parse_args()

    _setup()
    _wait_for_go()
    work = {"append": append, "delegate": delegate, "revoke": revoke, "seal": seal}[args.command]
    print(json.dumps(work(args)), flush=True)


if __name__ == "__main__":
    main()
