"""A small client for agents talking to Custos. Standard library only: no Django, no third-party
packages, so it can be copied into any agent runtime.

    from custos_client import CustosClient

    agent = CustosClient("https://custos.example.com", agent_key="ck_…")
    token = agent.exchange_delegation(42, scope="crm.contacts:read")
    decision = agent.check("read", "crm.contacts", token=token.access_token, intent="answer a ticket", tool="crm")
    if decision.allowed:
        ...

A sub-agent exchanges its parent's token instead: ``sub.exchange_parent_token(parent_token)``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AccessRequest", "CustosClient", "CustosError", "Decision", "RotatedKey", "Token"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TYPE_AGENT_KEY = "urn:custos:params:oauth:token-type:agent-key"
TYPE_DELEGATION = "urn:custos:params:oauth:token-type:delegation"
TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"


class CustosError(Exception):
    """Custos refused a request: ``status`` is the HTTP status, ``code`` the stable error code."""

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body or {}


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    expires_at: float
    scope: tuple[str, ...]

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at - 5


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str
    reason: str
    decision_id: str
    detail: str = ""
    subject: dict[str, Any] | None = None
    actors: list[dict[str, Any]] = field(default_factory=list)
    delegation_chain: list[dict[str, Any]] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


@dataclass(frozen=True, slots=True)
class AccessRequest:
    id: int
    status: str
    scope: str
    resulting_delegation: int | None = None


@dataclass(frozen=True, slots=True)
class RotatedKey:
    id: int
    secret: str
    expires_at: str
    previous_id: int
    previous_expires_at: str  # the old key works until then (the overlap)


class CustosClient:
    def __init__(self, base_url: str, *, agent_key: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.agent_key = agent_key
        self.timeout = timeout

    # --- transport ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        bearer: str | None = None,
        json_body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Accept": "application/json", "User-Agent": "custos-client/1"}
        data: bytes | None = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read() or b"{}")
            except ValueError:
                body = {}
            code = body.get("code") or body.get("error") or "http_error"
            detail = body.get("detail") or body.get("error_description") or exc.reason
            raise CustosError(exc.code, str(code), str(detail), body) from None

    # --- tokens ---------------------------------------------------------------------------

    def _exchange(self, subject_token: str, subject_type: str, scope: str | None, audience: str | None) -> Token:
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "actor_token": self.agent_key,
            "actor_token_type": TYPE_AGENT_KEY,
            "subject_token": subject_token,
            "subject_token_type": subject_type,
        }
        if scope:
            form["scope"] = scope
        if audience:
            form["audience"] = audience
        _, body = self._request("POST", "/oauth/token", form=form)
        return Token(
            access_token=body["access_token"],
            expires_at=time.time() + int(body["expires_in"]),
            scope=tuple(str(body.get("scope", "")).split()),
        )

    def exchange_delegation(
        self, delegation_id: int, *, scope: str | None = None, audience: str | None = None
    ) -> Token:
        """A token to act for the human behind a delegation this agent is the delegate of."""
        return self._exchange(str(delegation_id), TYPE_DELEGATION, scope, audience)

    def exchange_parent_token(
        self, parent_token: str, *, scope: str | None = None, audience: str | None = None
    ) -> Token:
        """For a sub-agent: a token derived from its parent agent's token (attenuated, never longer)."""
        return self._exchange(parent_token, TYPE_JWT, scope, audience)

    def revoke(self, token: str) -> None:
        self._request("POST", "/oauth/revoke", bearer=self.agent_key, form={"token": token})

    # --- the check ------------------------------------------------------------------------

    def check(
        self,
        action: str,
        resource: str,
        *,
        token: str | None = None,
        intent: str = "",
        tool: str = "",
        session_id: str = "",
        request_id: str = "",
        parent_request_id: str = "",
    ) -> Decision:
        """Ask before a tool call. With ``token`` the agent acts for a human; without, as itself."""
        context = {
            "intent": intent,
            "tool": tool,
            "session_id": session_id,
            "request_id": request_id,
            "parent_request_id": parent_request_id,
        }
        _, body = self._request(
            "POST",
            "/api/v1/check",
            bearer=token or self.agent_key,
            json_body={"action": action, "resource": resource, "context": context},
        )
        return Decision(
            decision=body["decision"],
            reason=body["reason"],
            decision_id=body.get("decision_id", ""),
            detail=body.get("detail", ""),
            subject=body.get("subject"),
            actors=body.get("actors") or [],
            delegation_chain=body.get("delegation_chain") or [],
        )

    # --- acting within the chain ----------------------------------------------------------

    def spawn_sub_agent(self, name: str, *, purpose: str = "", token: str | None = None) -> dict[str, Any]:
        """Register a sub-agent of this agent. Returns the new agent (its ``id``)."""
        _, body = self._request(
            "POST", "/api/v1/agents/", bearer=token or self.agent_key, json_body={"name": name, "purpose": purpose}
        )
        return body

    def issue_sub_agent_key(self, sub_agent_id: int, *, token: str | None = None) -> str:
        """A key for one of this agent's sub-agents; the secret is returned once."""
        _, body = self._request(
            "POST", f"/api/v1/agents/{sub_agent_id}/keys/", bearer=token or self.agent_key, json_body={}
        )
        return str(body["secret"])

    def delegate(
        self, *, token: str, parent_delegation: int, sub_agent_id: int, scopes: list[str], expires_in: int, purpose: str
    ) -> dict[str, Any]:
        """Delegate part of this agent's delegation to one of its sub-agents (narrower, shorter)."""
        expires_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expires_in))
        _, body = self._request(
            "POST",
            "/api/v1/delegations/",
            bearer=token,
            json_body={
                "parent": parent_delegation,
                "delegate": sub_agent_id,
                "scopes": scopes,
                "expires_at": expires_at,
                "purpose": purpose,
            },
        )
        return body

    def request_access(
        self,
        scope: str,
        *,
        justification: str,
        intent: str = "",
        session_id: str = "",
        duration_seconds: int | None = None,
        token: str | None = None,
    ) -> AccessRequest:
        """Ask, mid-task, for a scope this agent was not delegated."""
        payload: dict[str, Any] = {"scope": scope, "justification": justification, "intent": intent}
        if session_id:
            payload["session_id"] = session_id
        if duration_seconds:
            payload["duration_seconds"] = duration_seconds
        _, body = self._request("POST", "/api/v1/access-requests/", bearer=token or self.agent_key, json_body=payload)
        return _access_request(body)

    def access_request(self, request_id: int, *, token: str | None = None) -> AccessRequest:
        """Poll a request this agent made; once approved, exchange ``resulting_delegation``."""
        _, body = self._request("GET", f"/api/v1/access-requests/{request_id}/", bearer=token or self.agent_key)
        return _access_request(body)

    # --- own keys -------------------------------------------------------------------------

    def rotate_key(self, key_id: int, *, overlap_seconds: int | None = None, token: str | None = None) -> RotatedKey:
        """Replace one of this agent's keys. The old key keeps working for the overlap only (the server's
        default when not given); the new one expires when the old one would have. When the key rotated is
        the one this client holds, the client switches to the new key."""
        payload: dict[str, Any] = {}
        if overlap_seconds is not None:
            payload["overlap_seconds"] = overlap_seconds
        _, body = self._request(
            "POST", f"/api/v1/keys/{key_id}/rotate/", bearer=token or self.agent_key, json_body=payload
        )
        new, previous = body["key"], body["previous"]
        if self.agent_key.startswith(f"ck_{previous['prefix']}_"):
            self.agent_key = str(new["secret"])
        return RotatedKey(
            id=int(new["id"]),
            secret=str(new["secret"]),
            expires_at=str(new["expires_at"]),
            previous_id=int(previous["id"]),
            previous_expires_at=str(previous["expires_at"]),
        )


def _access_request(body: dict[str, Any]) -> AccessRequest:
    return AccessRequest(
        id=int(body["id"]),
        status=str(body["status"]),
        scope=str(body["scope"]),
        resulting_delegation=body.get("resulting_delegation"),
    )
