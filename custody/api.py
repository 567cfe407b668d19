"""API v1 of the chain of custody: ``audit/custody/{id}/`` (any event's chain back to the human who
authorised it, and what followed) and ``audit/sessions/{session_id}/`` (one agent session's decisions as a
tree of requests). Admins and auditors only, read-only."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from console import roles
from console.api.errors import DETAIL_ERRORS, READ_ERRORS
from console.api.views import ApiView
from custody import sessions
from custody.custody import custody_of

DIGEST = re.compile(r"^[0-9a-f]{64}$")
SESSION = re.compile(r"^[\x21-\x7e]{1,200}$")


class RefOutput(serializers.Serializer[Any]):
    kind = serializers.CharField()
    id = serializers.CharField(allow_null=True)
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like a Serializer attribute


class TargetOutput(serializers.Serializer[Any]):
    type = serializers.CharField()
    id = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like a Serializer attribute


class PartyOutput(serializers.Serializer[Any]):
    type = serializers.CharField(help_text='"human" or "agent".')
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like a Serializer attribute
    status_then = serializers.CharField(help_text="Its status when the event happened.")
    status_now = serializers.CharField()


class AgentPartyOutput(PartyOutput):
    sponsor = PartyOutput(help_text="The human accountable for the agent.")


class CredentialOutput(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["delegation_token", "agent_key"])
    ref = serializers.CharField(help_text="The token's jti, or the key's public prefix.")
    issued_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    status_then = serializers.CharField()
    status_now = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    agent_key = serializers.CharField(allow_null=True, help_text="For a token: the agent key that obtained it.")
    revoked_reason = serializers.CharField(allow_blank=True)


class HopOutput(serializers.Serializer[Any]):
    delegation = serializers.IntegerField(help_text="The delegation link's id.")
    depth = serializers.IntegerField()
    agent = AgentPartyOutput(help_text="The agent this link let act.")
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(help_text="Who made the link: the human, a console user, or the agent above.")
    approved_by = serializers.CharField(allow_null=True, help_text="Who approved it, for a just-in-time request.")
    justification = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField()
    hops_left = serializers.IntegerField(help_text="How many further hops the link allows below it.")
    status_then = serializers.CharField()
    status_now = serializers.CharField()
    revoked_reason = serializers.CharField(allow_blank=True)
    token = CredentialOutput(allow_null=True, help_text="The token this hop's agent held for the chain.")


class DecisionOutput(serializers.Serializer[Any]):
    decision = serializers.CharField()
    reason = serializers.CharField()
    detail = serializers.CharField(allow_blank=True)
    scope = serializers.CharField()
    intent = serializers.CharField(allow_blank=True)
    tool = serializers.CharField(allow_blank=True)
    session_id = serializers.CharField(allow_blank=True)
    request_id = serializers.CharField(allow_blank=True)
    parent_request_id = serializers.CharField(allow_blank=True)


class RequestAgentOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(allow_null=True)
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like a Serializer attribute


class RequestOutput(serializers.Serializer[Any]):
    decision_id = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    agent = RequestAgentOutput()
    scope = serializers.CharField()
    decision = serializers.CharField()
    reason = serializers.CharField()
    request_id = serializers.CharField()


class MomentOutput(serializers.Serializer[Any]):
    when = serializers.ChoiceField(choices=["before", "this", "after"])
    id = serializers.CharField(help_text="The event's digest.")
    seq = serializers.IntegerField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    actor = RefOutput()
    action = serializers.CharField()
    target = TargetOutput()
    summary = serializers.CharField()


class CustodyOutput(serializers.Serializer[Any]):
    id = serializers.CharField(help_text="The event's digest (a decision's decision_id).")
    seq = serializers.IntegerField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    action = serializers.CharField()
    actor = RefOutput()
    target = TargetOutput()
    decision = DecisionOutput(allow_null=True, help_text="For a decision: its outcome and context.")
    human = PartyOutput(allow_null=True, help_text="The human the chain acts for.")
    chain = HopOutput(many=True, help_text="The delegation links from the human down to the acting agent.")
    acting_agent = AgentPartyOutput(allow_null=True)
    credential = CredentialOutput(allow_null=True, help_text="What the acting agent presented.")
    request_path = RequestOutput(many=True, help_text="The session's requests from the first down to this one.")
    child_requests = RequestOutput(many=True, help_text="Requests made on behalf of this one.")
    timeline = MomentOutput(many=True, help_text="Events about the chain's parties and credentials, oldest first.")
    timeline_truncated = serializers.BooleanField()
    chain_stands_now = serializers.BooleanField(help_text="Whether every link, party and credential is active now.")


class SessionEntryOutput(RequestOutput):
    parent_request_id = serializers.CharField(allow_blank=True)
    depth = serializers.IntegerField(help_text="How far below the session's first requests.")
    delegation_chain = serializers.ListField(child=serializers.IntegerField())
    intent = serializers.CharField(allow_blank=True)
    tool = serializers.CharField(allow_blank=True)


class SessionOutput(serializers.Serializer[Any]):
    session_id = serializers.CharField()
    human = RequestAgentOutput(allow_null=True)
    agents = RequestAgentOutput(many=True)
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField()
    allowed = serializers.IntegerField()
    denied = serializers.IntegerField()
    truncated = serializers.BooleanField()
    decisions = SessionEntryOutput(many=True, help_text="In the order recorded, each under its parent request.")


class CustodyApi(ApiView):
    read_roles = (roles.ADMIN, roles.AUDITOR)

    @extend_schema(
        operation_id="audit_custody",
        tags=["audit"],
        responses={200: CustodyOutput, **DETAIL_ERRORS, 400: READ_ERRORS[400]},
        description=(
            "The chain of custody of any audit event, by its id (a decision's `decision_id`): the human who "
            "authorised it, each delegation link (who made or approved it, when, why, its scopes, expiry and hops "
            "left), each agent that acted and the token it held, the key that obtained it, the decision with its "
            "context and request path, and the events that followed (revocations, reviews, offboarding). Every "
            "link carries its status when the event happened and now."
        ),
    )
    def get(self, request: Request, digest: str) -> Response:
        if not DIGEST.match(digest):
            raise ValidationError({"id": ["An event id is 64 lowercase hexadecimal characters."]})
        custody = custody_of(digest)
        if custody is None:
            raise NotFound("No audit event has this id.")
        return Response(self.output(CustodyOutput, custody.as_dict()))


class SessionApi(ApiView):
    read_roles = (roles.ADMIN, roles.AUDITOR)

    @extend_schema(
        operation_id="audit_session",
        tags=["audit"],
        responses={200: SessionOutput, **DETAIL_ERRORS, 400: READ_ERRORS[400]},
        description=(
            "Every decision of one goal-driven agent session (the `session_id` agents pass to the check), in "
            f"the order recorded, each placed under the request it was made for. At most {sessions.MAX_DECISIONS}."
        ),
    )
    def get(self, request: Request, session_id: str) -> Response:
        if not SESSION.match(session_id):
            raise ValidationError({"session_id": ["A session id is 1 to 200 printable characters."]})
        timeline = sessions.session_timeline(session_id)
        if timeline is None:
            raise NotFound("No decision was recorded in this session.")
        return Response(self.output(SessionOutput, timeline.as_dict()))
