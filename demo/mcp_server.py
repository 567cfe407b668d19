"""The demo's MCP server: Halyard's support tools (look up a CRM contact, read a ticket, post to Slack,
export the contact list) served over streamable HTTP by FastMCP, behind ``custos_mcp.CustosMiddleware``.

It is what a team protecting its own FastMCP server with Custos writes: the tools are plain functions
over (here, made-up) data; the middleware verifies each caller's delegation token, lists only the
tools it was delegated and asks Custos before every call. ``manage.py demo_mcp_server`` serves it under
``make run``; the agent simulator calls it with the official ``mcp`` client (``demo.mcp_agents``).

The data is plain module constants so the simulator can ask for contacts and tickets that exist.
``fastmcp`` is imported inside ``build``: the rest of the demo imports this module for its data.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from custos_mcp import CustosMiddleware

# The server as a resource in Custos: its tools are the resource's actions.
RESOURCE = "support.mcp"
TOOLS = ("lookup_contact", "read_ticket", "post_message", "export_contacts")
# What the support agents are delegated: reading. Posting and exporting stay with people, so an agent
# that tries either is refused (and the console shows it).
DELEGATED_TOOLS = ("lookup_contact", "read_ticket")
# What the support people hold, and so could delegate; exporting the contact list is for nobody.
HELD_TOOLS = ("lookup_contact", "read_ticket", "post_message")
DEFAULT_PORT_OFFSET = 1  # make run serves it on the console's port + 1


@dataclass(frozen=True, slots=True)
class Contact:
    email: str
    name: str
    company: str
    plan: str
    owner: str


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    contact: str
    subject: str
    status: str


CONTACTS: tuple[Contact, ...] = (
    Contact("ops@brightline-cafe.example", "Ines Moreau", "Brightline Café", "Starter", "Diego Álvarez"),
    Contact("finance@kestrel-outdoor.example", "Tom Whitaker", "Kestrel Outdoor", "Growth", "Mei Tanaka"),
    Contact("payments@orchard-books.example", "Sana Qureshi", "Orchard Books", "Growth", "Amara Nwosu"),
    Contact("it@polaris-freight.example", "Jonas Berg", "Polaris Freight", "Enterprise", "James O'Connor"),
    Contact("owner@tidewater-yoga.example", "Lucía Romero", "Tidewater Yoga", "Starter", "Kwame Boateng"),
    Contact("billing@northwind-clinic.example", "Dr. Ada Okafor", "Northwind Clinic", "Enterprise", "Mei Tanaka"),
)
TICKETS: tuple[Ticket, ...] = (
    Ticket(4101, "ops@brightline-cafe.example", "Card reader declines contactless payments", "open"),
    Ticket(4102, "finance@kestrel-outdoor.example", "Payout delayed since Friday", "pending"),
    Ticket(4103, "payments@orchard-books.example", "Refund shows twice on the statement", "open"),
    Ticket(4104, "it@polaris-freight.example", "Webhook signatures fail after key rotation", "escalated"),
    Ticket(4105, "owner@tidewater-yoga.example", "How do I add a second location?", "open"),
    Ticket(4106, "billing@northwind-clinic.example", "Invoice VAT number is wrong", "pending"),
)
CHANNELS = ("#support-escalations", "#payments-incidents", "#support-emea")


def build(middleware: CustosMiddleware, *, posted: list[dict[str, str]] | None = None) -> FastMCP:
    """The server with its tools, every request going through ``middleware``. ``posted`` collects what
    ``post_message`` was asked to send (the demo has no Slack): what a tool really did."""
    from fastmcp import FastMCP

    contacts = {contact.email: contact for contact in CONTACTS}
    tickets = {ticket.id: ticket for ticket in TICKETS}
    outbox = posted if posted is not None else []
    lock = threading.Lock()

    mcp = FastMCP(
        "halyard-support",
        instructions="Halyard Payments support tools: CRM contacts, Zendesk tickets and Slack.",
        auth=middleware.auth,
        middleware=[middleware],
    )

    @mcp.tool
    def lookup_contact(email: str) -> dict[str, Any]:
        """A customer's contact record in the CRM, by e-mail address."""
        contact = contacts.get(email.strip().lower())
        if contact is None:
            return {"found": False, "email": email}
        return {
            "found": True,
            "name": contact.name,
            "company": contact.company,
            "plan": contact.plan,
            "account_owner": contact.owner,
        }

    @mcp.tool
    def read_ticket(ticket_id: int) -> dict[str, Any]:
        """A support ticket in Zendesk: who raised it, its subject and status."""
        ticket = tickets.get(ticket_id)
        if ticket is None:
            return {"found": False, "ticket_id": ticket_id}
        return {
            "found": True,
            "ticket_id": ticket.id,
            "from": ticket.contact,
            "subject": ticket.subject,
            "status": ticket.status,
        }

    @mcp.tool
    def post_message(channel: str, text: str) -> dict[str, Any]:
        """Post a message to a Slack channel."""
        with lock:
            outbox.append({"channel": channel, "text": text})
        return {"posted": True, "channel": channel}

    @mcp.tool
    def export_contacts() -> dict[str, Any]:
        """Every contact in the CRM, for a bulk export."""
        return {"contacts": [contact.email for contact in CONTACTS]}

    return mcp
