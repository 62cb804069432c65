"""Agents: create, list, retrieve, partial update, update, delete, with the runtime settings the
contract's AgentRequest carries stored and read back, and `if_updated_at` refusing a stale write."""

import datetime

from thunderphone.generated.api.agents import (
    agents_create,
    agents_delete,
    agents_list,
    agents_partial_update,
    agents_retrieve,
    agents_update,
)
from thunderphone.generated.models import (
    Agent,
    AgentRequest,
    AgentWriteRequest,
    InboundSpeakOrderEnum,
    PatchedAgentWriteRequest,
    ProductF52Enum,
    ThinkingLevel477Enum,
    TransferDestinationRequest,
    VoicemailAction89DEnum,
)

from client import expect

STATE = {}


def create(ctx):
    body = AgentRequest(
        name="Front desk",
        prompt="You book appointments for a dental clinic.",
        voice="coral",
        voicemail_action=VoicemailAction89DEnum.MESSAGE,
        voicemail_message="Please call {org_name} back.",
        silence_checkins_enabled=True,
        silence_interval_seconds=8,
        silence_max_checkins=3,
        inbound_speak_order=InboundSpeakOrderEnum.AGENT_FIRST,
        transfer_destinations=[TransferDestinationRequest(name="Reception", number="+14155550100")],
        primary_language="en",
        additional_languages=["es"],
        timezone="America/Los_Angeles",
        max_call_duration_seconds=900,
        ring_duration_seconds=None,
        thinking_level=ThinkingLevel477Enum.EXTRA,
        product=ProductF52Enum.STORM_BASE,
        steps=[{"name": "greet", "prompt": "Greet the caller."}],
        business_hours={"mon": [["09:00", "17:00"]]},
        watchdog_enabled=True,
    )
    agent = expect(agents_create.sync_detailed(client=ctx.client(), body=body), 201, Agent)
    assert isinstance(agent.id, int), agent
    assert (agent.name, agent.prompt, agent.voice) == (body.name, body.prompt, "coral"), agent
    assert agent.voicemail_action == VoicemailAction89DEnum.MESSAGE, agent
    assert (agent.silence_interval_seconds, agent.silence_max_checkins) == (8, 3), agent
    assert [(d.name, d.number) for d in agent.transfer_destinations] == [("Reception", "+14155550100")], agent
    assert agent.additional_languages == ["es"] and agent.timezone == "America/Los_Angeles", agent
    assert agent.max_call_duration_seconds == 900 and agent.ring_duration_seconds is None, agent
    assert agent.thinking_level == ThinkingLevel477Enum.EXTRA and agent.product == ProductF52Enum.STORM_BASE, agent
    assert agent.steps == body.steps and agent.business_hours == body.business_hours, agent
    assert agent.watchdog_enabled is True and agent.has_draft is False and agent.integrations == [], agent
    assert agent.created_at.tzinfo is not None, agent
    STATE["agent"] = agent


def list_and_retrieve(ctx):
    agent = STATE["agent"]
    agents = expect(agents_list.sync_detailed(client=ctx.client()), 200, [Agent])
    assert [a.id for a in agents] == [agent.id], agents
    again = expect(agents_retrieve.sync_detailed(agent.id, client=ctx.client()), 200, Agent)
    assert again.to_dict() == agent.to_dict(), (again, agent)


def partial_update(ctx):
    agent = STATE["agent"]
    body = PatchedAgentWriteRequest(silence_max_checkins=5, voice="sage", if_updated_at=agent.updated_at)
    patched = expect(agents_partial_update.sync_detailed(agent.id, client=ctx.client(), body=body), 200, Agent)
    assert (patched.voice, patched.silence_max_checkins) == ("sage", 5), patched
    assert patched.prompt == agent.prompt and patched.timezone == agent.timezone, "a patch leaves the rest"
    # The same precondition again: the agent changed since, so the write is refused.
    stale = agents_partial_update.sync_detailed(agent.id, client=ctx.client(), body=body)
    assert stale.status_code == 409 and stale.parsed is None, stale.content
    STATE["agent"] = patched


def update(ctx):
    agent = STATE["agent"]
    body = AgentWriteRequest(
        name="Sales", prompt="You sell.", voice="alloy", max_call_duration_seconds=300, if_updated_at=agent.updated_at
    )
    replaced = expect(agents_update.sync_detailed(agent.id, client=ctx.client(), body=body), 200, Agent)
    assert (replaced.name, replaced.prompt, replaced.voice) == ("Sales", "You sell.", "alloy"), replaced
    assert replaced.max_call_duration_seconds == 300, replaced
    # PUT replaces: what it leaves out is back at its default.
    assert replaced.transfer_destinations == [] and replaced.timezone == "", replaced
    old = agent.updated_at - datetime.timedelta(seconds=1)
    stale = agents_update.sync_detailed(
        agent.id, client=ctx.client(), body=AgentWriteRequest(name="x", prompt="y", voice="alloy", if_updated_at=old)
    )
    assert stale.status_code == 409, stale.content


def refused(ctx):
    r = agents_create.sync_detailed(client=ctx.client(), body=AgentRequest(name="A", prompt="B", voice="no-such-voice"))
    assert r.status_code == 400 and b"voice" in r.content, r.content


def delete(ctx):
    agent = STATE["agent"]
    expect(agents_delete.sync_detailed(agent.id, client=ctx.client()), 204)
    gone = agents_retrieve.sync_detailed(agent.id, client=ctx.client())
    assert gone.status_code == 404, gone.content
    assert expect(agents_list.sync_detailed(client=ctx.client()), 200, [Agent]) == []


STEPS = [
    ("create", create),
    ("list and retrieve", list_and_retrieve),
    ("partial update", partial_update),
    ("update", update),
    ("refused", refused),
    ("delete", delete),
]
