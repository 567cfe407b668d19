"""Revocation takes effect on the very next check, in every process (SPEC §3).

The cross-process tests are transactional (the other process must see committed rows) and start real
``manage.py shell`` processes against the same test database: one revokes while this process checks,
and one keeps a warm signature cache while this process revokes. The flush after each transactional
test goes past the audit log's triggers through the fixture in ``tests/conftest.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.test import Client

from governance import services, tokens
from governance.decision import Reason
from governance.models import Delegation, DelegationStatus, DelegationToken
from tests.factories import SYSTEM, make_chain, make_chain_tokens

ROOT = Path(settings.BASE_DIR)
REVOKE_TIMEOUT = 60


def check(credential: str, resource: str) -> HttpResponse:
    return Client().post(
        "/api/v1/check",
        {"action": "read", "resource": resource, "context": {"intent": "revocation test"}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {credential}",
    )


def decision(response: HttpResponse) -> tuple[str, str]:
    assert response.status_code == 200, response.content
    body = response.json()
    return body["decision"], body["reason"]


def other_process_env() -> dict[str, str]:
    """The environment of a second Custos process on the same (test) database as this one."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "localhost"
    port = f":{db['PORT']}" if db["PORT"] else ""
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{user}{password}@{host}{port}/{db['NAME']}"
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return env


def manage_shell(code: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=other_process_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


_REVOKER = """
from audit.services import Actor
from governance import services
from governance.models import Delegation
revoked = services.delegation_revoke(
    actor=Actor.system("another process"), delegation=Delegation.objects.get(pk={pk}), reason="revoked elsewhere"
)
print([link.pk for link in revoked])
"""


@pytest.mark.django_db(transaction=True)
def test_a_root_delegation_revoked_in_another_process_is_refused_by_the_next_check_here() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    sub_token, resource = issued["tokens"][1], chain["resource"].name
    # Warm: verified once here, so its signature sits in this process's cache.
    assert decision(check(sub_token, resource)) == ("allow", Reason.ALLOWED)
    assert tokens.signature_cache.get(hashlib.sha256(sub_token.encode()).digest()) is not None

    other = manage_shell(_REVOKER.format(pk=chain["links"][0].pk))
    out, err = other.communicate(timeout=REVOKE_TIMEOUT)
    assert other.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == [link.pk for link in chain["links"]]

    # The very next check, with nothing in between: no cache window.
    # delegation_revoked rather than chain_broken: the revocation cascaded to the sub-agent's own link.
    assert decision(check(sub_token, resource)) == ("deny", Reason.DELEGATION_REVOKED)


_WORKER = """
import json, sys
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client()
for line in sys.stdin:
    credential, resource = line.split()
    response = client.post(
        "/api/v1/check", {"action": "read", "resource": resource}, content_type="application/json",
        HTTP_AUTHORIZATION="Bearer " + credential, secure=True,
    )
    print(json.dumps({"status": response.status_code, **response.json()}), flush=True)
"""


@pytest.fixture
def worker() -> Iterator[subprocess.Popen[str]]:
    """A second, long-lived Custos process answering checks: its caches stay warm between checks."""
    process = manage_shell(_WORKER, stdin=subprocess.PIPE)
    try:
        yield process
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ask(worker: subprocess.Popen[str], credential: str, resource: str) -> dict[str, Any]:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(f"{credential} {resource}\n")
    worker.stdin.flush()
    line = worker.stdout.readline()
    if not line:
        assert worker.stderr is not None
        pytest.fail(f"the worker process died: {worker.stderr.read()}")
    answer: dict[str, Any] = json.loads(line)
    return answer


@pytest.mark.django_db(transaction=True)
def test_a_process_with_a_warm_cache_refuses_a_delegation_revoked_here_on_its_next_check(
    worker: subprocess.Popen[str],
) -> None:
    chain = make_chain(depth=3)
    issued = make_chain_tokens(chain)
    leaf_token, resource = issued["tokens"][2], chain["resource"].name
    first = ask(worker, leaf_token, resource)
    assert (first["status"], first["decision"]) == (200, "allow"), first
    assert ask(worker, leaf_token, resource)["decision"] == "allow"  # served with the cache warm

    services.delegation_revoke(actor=SYSTEM, delegation=chain["links"][0], reason="revoked in this process")

    after = ask(worker, leaf_token, resource)
    assert (after["status"], after["decision"], after["reason"]) == (200, "deny", Reason.DELEGATION_REVOKED)


@pytest.mark.django_db(transaction=True)
def test_a_token_revoked_here_is_refused_by_the_other_process_on_its_next_check(
    worker: subprocess.Popen[str],
) -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    top_token, sub_token, resource = issued["tokens"][0], issued["tokens"][1], chain["resource"].name
    assert ask(worker, sub_token, resource)["decision"] == "allow"

    response = Client().post(
        "/oauth/revoke",
        urlencode({"token": top_token}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {issued['keys'][0]}",
    )
    assert response.status_code == 200

    # Revoking the parent agent's token cascades to the token the sub-agent derived from it.
    after = ask(worker, sub_token, resource)
    assert (after["decision"], after["reason"]) == ("deny", Reason.CREDENTIAL_REVOKED)


# --- Within one process: the signature cache never outlives a revocation ---------------------


@pytest.mark.django_db
def test_a_cached_signature_does_not_keep_a_revoked_token_usable() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    token, resource = issued["tokens"][1], chain["resource"].name
    digest = hashlib.sha256(token.encode()).digest()
    assert decision(check(token, resource)) == ("allow", Reason.ALLOWED)
    assert tokens.signature_cache.get(digest) is not None

    response = Client().post(
        "/oauth/revoke",
        urlencode({"token": token}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {issued['keys'][1]}",
    )
    assert response.status_code == 200
    # Still cached (the signature is still good), and still refused: revocation is read every time.
    assert tokens.signature_cache.get(digest) is not None
    assert decision(check(token, resource)) == ("deny", Reason.CREDENTIAL_REVOKED)
    assert DelegationToken.objects.get(revoked_at__isnull=False).revoked_reason == "revoked via RFC 7009"


@pytest.mark.django_db
def test_a_cached_signature_does_not_keep_a_token_usable_after_its_delegation_is_revoked() -> None:
    chain = make_chain(depth=2)
    issued = make_chain_tokens(chain)
    token, resource = issued["tokens"][1], chain["resource"].name
    assert decision(check(token, resource)) == ("allow", Reason.ALLOWED)
    services.delegation_revoke(actor=SYSTEM, delegation=chain["links"][1], reason="done")
    assert decision(check(token, resource)) == ("deny", Reason.DELEGATION_REVOKED)
    # The parent's token, on the untouched parent link, is unaffected.
    assert decision(check(issued["tokens"][0], resource)) == ("allow", Reason.ALLOWED)


@pytest.mark.django_db
def test_revoking_the_root_delegation_marks_every_link_below_it() -> None:
    chain = make_chain(depth=3)
    services.delegation_revoke(actor=SYSTEM, delegation=chain["links"][0], reason="leaver")
    statuses = dict(Delegation.objects.filter(pk__in=[d.pk for d in chain["links"]]).values_list("pk", "status"))
    assert set(statuses.values()) == {DelegationStatus.REVOKED}
