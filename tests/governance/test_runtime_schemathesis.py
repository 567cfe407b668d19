"""Generated requests against the runtime endpoints find no server error.

``POST /api/v1/check`` is in the app's own OpenAPI schema (``/api/schema/``): schemathesis generates
requests from it (conforming and not) and runs its checks, the first of which is "not a 5xx", against
the WSGI application in-process, with a valid token, a valid key, junk, and no credential. The OAuth
endpoints are plain Django views outside that schema, so a hand-written hypothesis test posts random
form fields (real values mixed with junk) to each and asserts no 5xx and RFC 6749 error JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from governance import oauth
from tests.factories import make_admin, make_api_token, make_chain, make_chain_tokens

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 50
BOUNDED = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def credentials() -> dict[str, str]:
    chain = make_chain(depth=2, scopes=("read", "write"))
    issued = make_chain_tokens(chain)
    return {
        "token": issued["tokens"][1],
        "parent_token": issued["tokens"][0],
        "key": issued["keys"][1],
        "parent_key": issued["keys"][0],
        "delegation": str(chain["links"][0].pk),
        "resource": chain["resource"].name,
        "scope": chain["resource"].scope("read"),
        "scope_write": chain["resource"].scope("write"),
        "issuer": settings.CUSTOS_ISSUER,
        "console": make_api_token(make_admin()),
    }


def check_operation() -> Any:
    """``POST /api/v1/check`` as the app's own schema describes it, fetched from ``/api/schema/``."""
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return schemathesis.openapi.from_dict(json.loads(response.content))["/api/v1/check"]["POST"]


def in_test_transaction(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Django's WSGI application, with the one difference Django's own test client makes: the request
    signals do not close the database connection, which holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = WSGIHandler()(environ, start_response)
        try:
            return [b"".join(response)]
        finally:
            response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def fuzz_check(case: Any, credentials: dict[str, str], credential: str) -> int:
    bearer = {"token": credentials["token"], "key": credentials["key"], "junk": "a.b.c"}.get(credential)
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    if credential == "token" and isinstance(case.body, dict) and isinstance(case.body.get("resource"), str):
        # Ask about the resource the token really covers, so the allow path is fuzzed too.
        case.body["resource"] = credentials["resource"]
    response = case.call_and_validate(
        app=in_test_transaction, base_url="http://testserver", headers=headers, checks=[not_a_server_error]
    )
    assert response.status_code < 500
    event(f"status {response.status_code}")
    if response.status_code == 200:
        body = response.json()
        event(f"{body['decision']} {body['reason']}")
        assert body["decision"] in ("allow", "deny") and body["reason"] and body["decision_id"]
    else:
        assert response.status_code in (400, 413, 415), response.text
        assert {"code", "detail", "fields"} <= set(response.json())
    return int(response.status_code)


@pytest.mark.parametrize("credential", ["token", "key", "junk", "none"])
def test_the_check_never_answers_with_a_server_error(credentials: dict[str, str], credential: str) -> None:
    # The schema is loaded inside the test and its strategy driven with @given: schemathesis's own
    # pytest loader (schema.parametrize / from_fixture) does not run under pytest 9.
    operation = check_operation()
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    statuses: Counter[int] = Counter()

    @BOUNDED
    @given(case=cases)
    def generated(case: Any) -> None:
        statuses[fuzz_check(case, credentials, credential)] += 1

    generated()
    # Both sides were reached: bodies the check decided on, and bodies it refused as malformed.
    assert statuses[200] and statuses[400], statuses


# --- The OAuth endpoints: random form fields --------------------------------------------------

FIELDS = [
    "grant_type",
    "actor_token",
    "actor_token_type",
    "subject_token",
    "subject_token_type",
    "scope",
    "audience",
    "resource",
    "expires_in",
    "requested_token_type",
    "token",
    "token_type_hint",
    "reason",
]
REAL = ["token", "parent_token", "key", "parent_key", "delegation", "resource", "console"]
CONSTANTS = [
    oauth.GRANT_TYPE_TOKEN_EXCHANGE,
    oauth.TOKEN_TYPE_AGENT_KEY,
    oauth.TOKEN_TYPE_DELEGATION,
    oauth.TOKEN_TYPE_JWT,
    oauth.TOKEN_TYPE_ACCESS_TOKEN,
    "read",
    "0",
    "-1",
    "²",
    "9" * 40,
    "\x00",
    "ck_",
    "a.b.c",
]
values = st.one_of(
    st.sampled_from(REAL).map(lambda name: f"@{name}"),  # a placeholder for a real credential, filled in below
    st.sampled_from(CONSTANTS),
    st.text(max_size=60),
    st.text(alphabet="0123456789", min_size=1, max_size=25),
)
random_forms = st.lists(
    st.tuples(st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)), values), min_size=0, max_size=10
)


def plausible(choices: list[str]) -> st.SearchStrategy[str]:
    """Mostly (about four times in five) a value that gets the request further, else junk."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda n: values if n == 4 else st.sampled_from(choices))


# Forms close to a real exchange, so the fuzzing also reaches the exchange itself, not only the checks
# of required fields in front of it. Optional fields may be absent.
exchange_forms = st.fixed_dictionaries(
    {
        "grant_type": plausible([oauth.GRANT_TYPE_TOKEN_EXCHANGE]),
        "actor_token": plausible(["@key", "@parent_key"]),
        "actor_token_type": plausible([oauth.TOKEN_TYPE_AGENT_KEY]),
        "subject_token": plausible(["@parent_token", "@token", "@delegation"]),
        "subject_token_type": plausible([oauth.TOKEN_TYPE_JWT, oauth.TOKEN_TYPE_DELEGATION]),
    },
    optional={
        "scope": plausible(["@scope", "@scope_write", "@scope @scope_write"]),
        "audience": plausible(["@resource", "@issuer"]),
        "resource": plausible(["@resource", "@issuer"]),
        "expires_in": plausible(["1", "60", "600", "86400"]),
        "token": plausible(["@token", "@parent_token"]),
    },
).map(lambda form: list(form.items()))
forms = st.one_of(exchange_forms, random_forms)
callers = st.sampled_from([None, "key", "parent_key", "console", "token", "junk"])


def fill(value: str, credentials: dict[str, str]) -> str:
    """Replace each ``@name`` placeholder with the real value of that name."""
    return " ".join(
        credentials[word[1:]] if word.startswith("@") and word[1:] in credentials else word for word in value.split(" ")
    )


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
@BOUNDED
@given(form=forms, caller=callers, form_encoded=st.integers(min_value=0, max_value=4).map(lambda n: n < 4))
def test_the_oauth_endpoints_never_answer_with_a_server_error(
    credentials: dict[str, str], path: str, form: list[tuple[str, str]], caller: str | None, form_encoded: bool
) -> None:
    body = urlencode([(name, fill(value, credentials)) for name, value in form])
    headers: dict[str, str] = {}
    if caller is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {credentials.get(caller, 'junk')}"
    content_type = "application/x-www-form-urlencoded" if form_encoded else "text/plain"
    response = Client().post(path, body, content_type=content_type, **headers)
    assert response.status_code < 500, response.content
    event(f"status {response.status_code}")
    assert response["Cache-Control"] == "no-store"
    payload = response.json()
    if response.status_code >= 400:
        assert set(payload) == {"error", "error_description"}, payload
        assert payload["error"] in {
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "invalid_scope",
            "invalid_target",
            "unauthorized_client",
            "unsupported_grant_type",
        }
