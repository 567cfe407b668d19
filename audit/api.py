"""API v1 of the audit log: ``audit/events/`` (filtered, cursor-paged, newest first), ``audit/verify/``
(recompute the chain, name the first bad event) and ``audit/export/`` (an evidence bundle that verifies
offline). Admins and auditors only."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from audit import bundles
from audit.models import ActorKind, AuditEvent
from audit.verification import verify_chain
from console import roles
from console.api.errors import AUTH_ERRORS, READ_ERRORS, ErrorOutput
from console.api.fields import AwareDateTimeField
from console.api.pagination import PARAMETERS as PAGE_PARAMETERS
from console.api.pagination import page_serializer
from console.api.views import ApiView
from console.paging import MAX_KEY


class AuditEventOutput(serializers.ModelSerializer[AuditEvent]):
    seq = serializers.IntegerField(
        source="seal.seq", allow_null=True, default=None, help_text="Its place in the chain; null until sealed."
    )
    prev_hash = serializers.CharField(source="seal.prev_hash", allow_null=True, default=None)
    hash = serializers.CharField(source="seal.hash", allow_null=True, default=None, help_text="Its seal's hash.")

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "digest",
            "seq",
            "occurred_at",
            "actor_kind",
            "actor_id",
            "actor_label",
            "on_behalf_of",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "context",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


AuditEventPage = page_serializer(AuditEventOutput, "AuditEventPage")


def _subject(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_KEY, required=False, help_text=help_text)


class AuditEventFilter(serializers.Serializer[Any]):
    action = serializers.CharField(max_length=80, required=False, help_text="Exact action, e.g. grant.revoke.")
    actor_kind = serializers.ChoiceField(choices=ActorKind.choices, required=False)
    actor_id = serializers.CharField(max_length=64, required=False)
    target_type = serializers.CharField(max_length=40, required=False)
    target_id = serializers.CharField(max_length=64, required=False)
    since = AwareDateTimeField(required=False, help_text="Events at or after this time.")
    until = AwareDateTimeField(required=False, help_text="Events before this time.")
    agent = _subject("Every event about this agent, by id: its own acts, its keys, tokens and delegations.")
    human = _subject("Every event about this human, by id: done by them or on their behalf.")
    resource = _subject("Every event about this resource, by id.")


class AuditVerifyOutput(serializers.Serializer[Any]):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="Events whose hash was recomputed.")
    head_seq = serializers.IntegerField()
    first_bad_seq = serializers.IntegerField(allow_null=True)
    first_bad_event = serializers.CharField(
        allow_null=True, help_text="The digest of the first bad event when it has no place in the chain."
    )
    problem = serializers.CharField(allow_blank=True)
    pending = serializers.IntegerField(help_text="Events recorded and waiting to be sealed.")
    verified_from = serializers.IntegerField(help_text="The checkpoint verification started from (0: the first).")
    checkpoints = serializers.IntegerField(help_text="Signed checkpoints the chain was held to.")


class AuditBrokenOutput(AuditVerifyOutput):
    code = serializers.CharField(help_text="audit_chain_broken")
    detail = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))  # type: ignore[assignment]  # a field named like a Serializer attribute


class AuditEventListApi(ApiView):
    read_roles = (roles.ADMIN, roles.AUDITOR)

    @extend_schema(
        operation_id="audit_events_list",
        tags=["audit"],
        parameters=[AuditEventFilter, *PAGE_PARAMETERS],
        responses={200: AuditEventPage, **READ_ERRORS},
        description=(
            "Newest first, paginated by event id (the order events were recorded). `digest` is an event's "
            "permanent id (a decision's `decision_id`); `seq` and the hashes are its seal, null for the "
            "moment between recording and sealing."
        ),
    )
    def get(self, request: Request) -> Response:
        filters = self.validated(AuditEventFilter, request.query_params)
        # The time range and subjects as the console and bundles select them; the rest exact.
        selection = bundles.Selection(
            **{name: filters[name] for name in ("since", "until", "agent", "human", "resource") if name in filters}
        )
        events = selection.events().select_related("seal")
        for field in ("action", "actor_kind", "actor_id", "target_type", "target_id"):
            if field in filters:
                events = events.filter(**{field: filters[field]})
        return self.page(events, AuditEventOutput)


class AuditVerifyApi(ApiView):
    read_roles = (roles.ADMIN, roles.AUDITOR)

    @extend_schema(
        operation_id="audit_verify",
        tags=["audit"],
        responses={
            200: AuditVerifyOutput,
            409: OpenApiResponse(AuditBrokenOutput, description="The chain is broken at first_bad_seq."),
            **AUTH_ERRORS,
        },
        description=(
            "Recompute the chain from the latest signed checkpoint it still agrees with (the nightly job and "
            "`manage.py audit_verify` do it from the first event), hold it to the latest checkpoints in the "
            "database and in the checkpoint directory, and name the first event that does not fit."
        ),
    )
    def get(self, request: Request) -> Response:
        result = verify_chain(full=False).as_dict()
        if result["ok"]:
            return Response(result)
        body = result | {
            "code": "audit_chain_broken",
            "detail": f"The audit chain is broken at event #{result['first_bad_seq'] or result['first_bad_event']}: "
            f"{result['problem']}",
            "fields": {},
        }
        return Response(body, status=status.HTTP_409_CONFLICT)


class AuditExportFilter(serializers.Serializer[Any]):
    since = AwareDateTimeField(required=False, help_text="Events at or after this time.")
    until = AwareDateTimeField(required=False, help_text="Events before this time.")
    agent = _subject("Every event about this agent, by id: its own acts, its keys, tokens and delegations.")
    human = _subject("Every event about this human, by id: done by them or on their behalf.")
    resource = _subject("Every event about this resource, by id.")
    decision = serializers.RegexField(r"^[0-9a-f]{64}$", required=False, help_text="One decision's decision_id.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                "Select something: a time range, an agent, a human, a resource or a decision."
            )
        return attrs


class NotReady(APIException):
    """The selected events are not sealed, or no checkpoint covers them, yet: ask again shortly."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The selected events cannot be bundled yet; try again in a few seconds."
    default_code = "audit_not_ready"


class AuditExportApi(ApiView):
    read_roles = (roles.ADMIN, roles.AUDITOR)

    @extend_schema(
        operation_id="audit_export",
        tags=["audit"],
        parameters=[AuditExportFilter],
        responses={
            200: OpenApiResponse(description="The bundle (JSON), as an attachment."),
            **READ_ERRORS,
            404: OpenApiResponse(ErrorOutput, description="No event matches the selection."),
            503: OpenApiResponse(ErrorOutput, description="The selected events are not sealed yet."),
        },
        description=(
            "An evidence bundle: the selected events, the seals linking them to a signed checkpoint, and a "
            "signed manifest. Verify it anywhere with `python -m audit.verify BUNDLE --trust <key>` (the "
            f"standard library and `cryptography` only). At most {bundles.MAX_EVENTS} events."
        ),
    )
    def get(self, request: Request) -> Response:
        selection = bundles.Selection(**self.validated(AuditExportFilter, request.query_params))
        try:
            bundle = bundles.export_bundle(selection)
        except bundles.NothingSelected as exc:
            raise NotFound(str(exc)) from None
        except bundles.SelectionTooLarge as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from None
        except (TimeoutError, RuntimeError) as exc:
            raise NotReady(str(exc)) from None
        name = f"custos-evidence-{bundle['manifest']['first_seq']}-{bundle['manifest']['checkpoint_seq']}.json"
        return Response(bundle, headers={"Content-Disposition": f'attachment; filename="{name}"'})
