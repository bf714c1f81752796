"""The SmartCommunicator checks of `syncd check`: the API user signs in, the customer ID belongs to it, and
the agents list reads. Two requests (authenticate, list the agents), neither of them a write.
"""

from __future__ import annotations

from collections import Counter

from syncd.config.settings import SmartCommSettings
from syncd.service.check.fixes import SMARTCOMM_CREDENTIALS, SMARTCOMM_CUSTOMER, SMARTCOMM_UNREACHABLE
from syncd.service.check.model import Check, fail, ok, skip
from syncd.smartcomm import (
    BadCredentials,
    CustomerForbidden,
    SmartCommClient,
    SmartCommError,
    TlsVerificationError,
)

_AUTH = ("smartcomm_auth", "SmartCommunicator sign-in")
_CUSTOMER = ("customer_id", "customer ID")
_AGENTS = ("agents_list", "agents list")


def _unreachable_fix(error: SmartCommError) -> str:
    if isinstance(error, TlsVerificationError):
        return "set smartcomm.ca_bundle to the PEM file of the CA that issued the service's certificate"
    return SMARTCOMM_UNREACHABLE


async def smartcomm_checks(settings: SmartCommSettings, *, tenant_id: str | None = None) -> list[Check]:
    """Every SmartCommunicator check, in the checklist's order. `tenant_id` (the Graph tenant's) lets the
    agents list say how many agents are another tenant's."""
    async with SmartCommClient(settings) as client:
        try:
            await client.authenticate()
        except BadCredentials as exc:
            detail = f"{settings.username} at {settings.base_url}: {exc.message}"
            return [fail(*_AUTH, detail, SMARTCOMM_CREDENTIALS), *_skipped("needs a sign-in")]
        except SmartCommError as exc:
            return [fail(*_AUTH, str(exc), _unreachable_fix(exc)), *_skipped("needs a sign-in")]
        checks = [ok(*_AUTH, f"{settings.username} signed in at {settings.base_url}")]
        try:
            agents = await client.list_agents()
        except CustomerForbidden:
            detail = f"{settings.customer_id} is not a customer these credentials may manage (HTTP 403)"
            checks.append(fail(*_CUSTOMER, detail, SMARTCOMM_CUSTOMER, customer_id=settings.customer_id))
            checks.append(skip(*_AGENTS, "needs a customer ID the credentials may manage"))
            return checks
        except SmartCommError as exc:
            checks.append(skip(*_CUSTOMER, "the agents list, which tells, could not be read"))
            checks.append(fail(*_AGENTS, str(exc), _unreachable_fix(exc)))
            return checks
    checks.append(
        ok(
            *_CUSTOMER,
            f"{settings.customer_id} belongs to these credentials",
            customer_id=settings.customer_id,
        )
    )
    statuses = Counter(agent.status for agent in agents)
    others = sum(1 for agent in agents if tenant_id is not None and agent.tenant_id.lower() != tenant_id)
    parts = [f"{count} {status}" for status, count in sorted(statuses.items())]
    detail = f"{len(agents)} agents" + (f" ({', '.join(parts)})" if parts else "")
    if others:
        detail += f", {others} of them for another tenant than graph.tenant_id"
    checks.append(ok(*_AGENTS, detail, agents=len(agents), by_status=dict(statuses), other_tenants=others))
    return checks


def _skipped(reason: str) -> list[Check]:
    return [skip(*_CUSTOMER, reason), skip(*_AGENTS, reason)]
