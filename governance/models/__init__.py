"""The identity model: humans, agents, resources, grants, delegations, keys and tokens, access requests.

Models hold data, database constraints and cheap properties. Every change goes through
``governance.services``, which validates the rules that span rows and writes the audit event.
"""

from __future__ import annotations

from governance.models.access import (
    Delegation,
    DelegationQuerySet,
    DelegationStatus,
    Grant,
    GrantQuerySet,
    GrantSource,
    GrantStatus,
)
from governance.models.identities import (
    SCOPE_SEPARATOR,
    SENSITIVITY_WEIGHT,
    Agent,
    AgentQuerySet,
    AgentStatus,
    Human,
    HumanQuerySet,
    HumanStatus,
    Resource,
    ResourceKind,
    ResourceQuerySet,
    RiskTier,
    Sensitivity,
    make_scope,
)
from governance.models.jit import (
    AccessRequest,
    AccessRequestQuerySet,
    AccessRequestStatus,
    DriftEvent,
    DriftEventQuerySet,
)
from governance.models.keys import (
    AgentKey,
    AgentKeyQuerySet,
    ApiToken,
    DelegationToken,
    DelegationTokenQuerySet,
    SigningKey,
    SigningKeyQuerySet,
)
from governance.models.offboarding import Offboarding, OffboardingKind
from governance.models.state import StateVersion

__all__ = [
    "SCOPE_SEPARATOR",
    "SENSITIVITY_WEIGHT",
    "AccessRequest",
    "AccessRequestQuerySet",
    "AccessRequestStatus",
    "Agent",
    "AgentKey",
    "AgentKeyQuerySet",
    "AgentQuerySet",
    "AgentStatus",
    "ApiToken",
    "Delegation",
    "DelegationQuerySet",
    "DelegationStatus",
    "DelegationToken",
    "DelegationTokenQuerySet",
    "DriftEvent",
    "DriftEventQuerySet",
    "Grant",
    "GrantQuerySet",
    "GrantSource",
    "GrantStatus",
    "Human",
    "HumanQuerySet",
    "HumanStatus",
    "Offboarding",
    "OffboardingKind",
    "Resource",
    "ResourceKind",
    "ResourceQuerySet",
    "RiskTier",
    "Sensitivity",
    "SigningKey",
    "SigningKeyQuerySet",
    "StateVersion",
    "make_scope",
]
