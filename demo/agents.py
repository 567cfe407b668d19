"""How Halyard's agents are described: an agent with the sub-agents it spawns, deployed once per
(variant, sponsor). The families themselves are in ``demo.families_operations`` and
``demo.families_business``; ``demo.catalogue`` lists them all."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """An agent and the sub-agents it spawns. ``scopes`` is what its delegation carries: a sub-agent's
    scopes are a strict subset of its parent's (attenuation). ``own`` are grants the agent holds itself."""

    name: str
    purpose: str
    risk: str
    scopes: tuple[str, ...]
    children: tuple[AgentSpec, ...] = ()
    own: tuple[str, ...] = ()

    @property
    def height(self) -> int:
        return 1 + max(c.height for c in self.children) if self.children else 0

    def walk(self) -> Iterable[AgentSpec]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class Family:
    """An agent template deployed once per (variant, sponsor)."""

    spec: AgentSpec
    variants: tuple[tuple[str, str], ...]


def agent_name(spec: AgentSpec, variant: str) -> str:
    return f"{spec.name}-{variant.replace(' ', '-')}"
