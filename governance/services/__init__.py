"""Every state change of the identity model, one module per entity. Each service is atomic, validates
what spans rows, and writes its audit event in the same transaction, so a change and its evidence land
together or not at all. Callers import them from here: ``services.delegation_create(actor=…, …)``.
"""

from __future__ import annotations

from governance.services.access_requests import (
    access_request_approve,
    access_request_create,
    access_request_deny,
    access_request_expire_due,
    may_decide,
)
from governance.services.agents import agent_create, agent_reactivate, agent_suspend, agent_update
from governance.services.by_agent import (
    agent_create_by_agent,
    agentkey_create_by_agent,
    agentkey_rotate_by_agent,
    delegation_create_by_agent,
)
from governance.services.delegations import delegation_create, delegation_renew, delegation_revoke
from governance.services.drift import DRIFT_REASONS, drift_acknowledge, drift_observe
from governance.services.grants import grant_create, grant_renew, grant_revoke
from governance.services.humans import human_create, human_set_status, human_update
from governance.services.keys import (
    agentkey_create,
    agentkey_hygiene,
    agentkey_revoke,
    agentkey_revoke_all,
    agentkey_rotate,
    api_token_create,
    token_revoke,
)
from governance.services.offboarding import AgentOffboardPlan, HumanOffboardPlan, agent_offboard, human_offboard
from governance.services.resources import parse_scopes, resource_create, resource_move
from governance.services.sweeps import expire_due, expiry_backlog

__all__ = [
    "DRIFT_REASONS",
    "AgentOffboardPlan",
    "HumanOffboardPlan",
    "access_request_approve",
    "access_request_create",
    "access_request_deny",
    "access_request_expire_due",
    "agent_create",
    "agent_create_by_agent",
    "agent_offboard",
    "agent_reactivate",
    "agent_suspend",
    "agent_update",
    "agentkey_create",
    "agentkey_create_by_agent",
    "agentkey_hygiene",
    "agentkey_revoke",
    "agentkey_revoke_all",
    "agentkey_rotate",
    "agentkey_rotate_by_agent",
    "api_token_create",
    "delegation_create",
    "delegation_create_by_agent",
    "delegation_renew",
    "delegation_revoke",
    "drift_acknowledge",
    "drift_observe",
    "expire_due",
    "expiry_backlog",
    "grant_create",
    "grant_renew",
    "grant_revoke",
    "human_create",
    "human_offboard",
    "human_set_status",
    "human_update",
    "may_decide",
    "parse_scopes",
    "resource_create",
    "resource_move",
    "token_revoke",
]
