"""Calls: place (with variables, a language and an idempotency key in the body), retrieve, list with
every filter, transcript, export (JSON and CSV), history, through the official client."""

import datetime
import time

import httpx
from thunderphone.generated.api.calls import (
    calls_export_list,
    calls_history_list,
    calls_list,
    calls_place,
    calls_retrieve,
    calls_transcript_list,
)
from thunderphone.generated.models import (
    Call,
    CallDirectionEnum,
    CallExport,
    CallListResponse,
    CallStatusEnum,
    CallTranscript,
    PhiModeEnum,
    PlaceCallRequest,
    PlaceCallRequestVariables,
    PlaceCallResponse,
    PlaceCallResponseStatusEnum,
    RecordingModeEnum,
)
from client import check, expect

FROM = "+14155550100"
TO = "+14155550123"
BUSY = "+15550000486"
PROMPT = "You help {{customer_name}} with order {{order_id}}."

# What the steps share: the org's set-up and the calls placed.
state = {}


def _api(ctx, method, path, body=None, **kwargs):
    r = httpx.request(
        method, ctx.url + path, json=body, headers={"Authorization": f"Bearer {ctx.key}"}, timeout=30.0, **kwargs
    )
    return r


def ready(ctx):
    """Readies the org to place calls from FROM: funds, an agent, a connection on the simulated
    carrier (tested, then created on the evidence), FROM imported onto it, assigned the agent and
    verified. The voip area drives these through the client; here they are plain HTTP."""
    ctx.admin("POST", f"/admin/v1/orgs/{ctx.org_id}/credits", {"amount_cents": 5000, "reference": "calls-funds"})
    agent = _api(ctx, "POST", "/v1/agents", {"name": "Orders", "prompt": PROMPT, "voice": "coral"})
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]
    sim = {"provider": "manual", "sip_config": {"host": "sim"}}
    tested = _api(ctx, "POST", "/v1/voip-connections/test", sim)
    assert tested.status_code == 201, tested.text
    connection = _api(
        ctx, "POST", "/v1/voip-connections", {**sim, "verification_evidence_id": tested.json()["verification_evidence"]["id"]}
    )
    assert connection.status_code == 201, connection.text
    imported = _api(ctx, "POST", f"/v1/voip-connections/{connection.json()['id']}/import-numbers", {"numbers": [FROM]})
    assert imported.status_code == 201, imported.text
    number_id = imported.json()["results"][0]["id"]
    assigned = _api(
        ctx, "PATCH", f"/v1/phone-numbers/{number_id}", {"inbound_agent_id": agent_id, "outbound_agent_id": agent_id}
    )
    assert assigned.status_code == 200, assigned.text
    verified = _api(ctx, "POST", f"/v1/phone-numbers/{number_id}/verify-voip", {})
    assert verified.status_code == 200, verified.text
    return {"agent_id": agent_id, "number": FROM}


def _wait_until_billed(ctx, call_id, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        call = expect(calls_retrieve.sync_detailed(call_id, client=ctx.client()), 200, Call)
        if call.status != CallStatusEnum.IN_PROGRESS and call.billed_at is not None:
            return call
        assert time.monotonic() < deadline, f"call {call_id} never ended and was billed: {call}"
        time.sleep(0.1)


def place_with_variables_language_and_key(ctx):
    state.update(ready(ctx))
    body = PlaceCallRequest(
        from_number=FROM,
        to_number=TO,
        agent_id=state["agent_id"],
        variables=PlaceCallRequestVariables.from_dict({"customer_name": "Ada", "tier": 3}),
        idempotency_key="calls-suite-first-call",
        language="en-GB",
        max_hold_seconds=30,
        phi_mode=PhiModeEnum.PHI,
    )
    placed = expect(calls_place.sync_detailed(client=ctx.client(), body=body), 201, PlaceCallResponse)
    check("status", placed.status == PlaceCallResponseStatusEnum.INITIATED, placed)
    check("first placement is no replay", placed.idempotent_replay is False, placed)
    again = expect(calls_place.sync_detailed(client=ctx.client(), body=body), 201, PlaceCallResponse)
    check("replay answers the same call", again.call_id == placed.call_id, (again, placed))
    check("replay says so", again.idempotent_replay is True, again)
    state["call_id"] = placed.call_id


def same_key_other_body_conflicts(ctx):
    body = PlaceCallRequest(from_number=FROM, to_number=BUSY, idempotency_key="calls-suite-first-call")
    r = calls_place.sync_detailed(client=ctx.client(), body=body)
    check("conflict", r.status_code == 409, r.content)


def retrieve_as_the_contracts_call(ctx):
    call = expect(calls_retrieve.sync_detailed(state["call_id"], client=ctx.client()), 200, Call)
    check("call_id", call.call_id == state["call_id"], call)
    check("direction", call.direction == CallDirectionEnum.OUTBOUND, call)
    check("numbers", (call.from_number, call.to_number) == (FROM, TO), call)
    check("agent", call.agent_id == state["agent_id"], call)
    check("variables", call.variables == {"customer_name": "Ada", "tier": 3}, call.variables)
    check("unresolved", call.unresolved_variables == ["order_id"], call.unresolved_variables)
    check("locale", call.locale == "en-GB", call.locale)
    check("prompt snapshot", call.prompt_snapshot == PROMPT, call.prompt_snapshot)
    check("voice", call.voice == "coral", call.voice)
    check("recording", call.recording_mode == RecordingModeEnum.DISABLED_BY_CONFIG, call.recording_mode)
    check("not a test call", call.is_test_call is False, call)
    check("start time", isinstance(call.start_time, datetime.datetime), call.start_time)

    done = _wait_until_billed(ctx, state["call_id"])
    check("completed", done.status == CallStatusEnum.COMPLETED, done)
    check("answered", isinstance(done.sip_answered_at, datetime.datetime), done.sip_answered_at)
    check("ended", isinstance(done.end_time, datetime.datetime) and done.end_time >= done.start_time, done)
    check("duration", isinstance(done.duration_seconds, int) and done.duration_seconds >= 1, done.duration_seconds)
    check("billed", isinstance(done.billing_total_cents, int) and done.billing_total_cents >= 1, done)
    check("billable minutes", done.billable_minutes == done.duration_seconds / 60, done.billable_minutes)
    check("dial state", done.outbound_dial_state == "answered", done.outbound_dial_state)


def list_with_every_filter(ctx):
    busy = expect(
        calls_place.sync_detailed(client=ctx.client(), body=PlaceCallRequest(from_number=FROM, to_number=BUSY)),
        201,
        PlaceCallResponse,
    )
    state["busy_id"] = busy.call_id
    failed = _wait_until_billed(ctx, busy.call_id)
    check("busy fails", failed.status == CallStatusEnum.FAILED and failed.end_reason == "busy", failed)
    check("unpaid", (failed.billing_total_cents, failed.billable_minutes) == (0, 0.0), failed)
    check("unanswered", failed.sip_answered_at is None, failed)

    def ids(**filters):
        page = expect(calls_list.sync_detailed(client=ctx.client(), **filters), 200, CallListResponse)
        return page.total, [c.call_id for c in page.results]

    first, second = state["call_id"], busy.call_id
    today = datetime.datetime.now(datetime.timezone.utc).date()
    check("all, newest first", ids() == (2, [second, first]), ids())
    check("status", ids(status="failed") == (1, [second]), ids(status="failed"))
    check("agent", ids(agent_id=state["agent_id"]) == (2, [second, first]), ids(agent_id=state["agent_id"]))
    check("direction", ids(direction="outbound")[0] == 2 and ids(direction="inbound")[0] == 0)
    check("from", ids(from_number=FROM)[0] == 2 and ids(from_number=TO)[0] == 0)
    check("to", ids(to_number=TO) == (1, [first]), ids(to_number=TO))
    check("either side", ids(phone_number=BUSY) == (1, [second]) and ids(phone_number=FROM)[0] == 2)
    check("dates", ids(start_date=today.isoformat(), end_date=today.isoformat())[0] == 2)
    check("dates exclude", ids(end_date=(today - datetime.timedelta(days=1)).isoformat())[0] == 0)
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
    check("datetimes", ids(start_date=later)[0] == 0 and ids(end_date=later)[0] == 2)
    check("without test calls", ids(exclude_test_calls=True)[0] == 2)
    page = expect(calls_list.sync_detailed(client=ctx.client(), limit=1, offset=1), 200, CallListResponse)
    check("page", (page.total, page.limit, page.offset, [c.call_id for c in page.results]) == (2, 1, 1, [first]), page)
    bad = calls_list.sync_detailed(client=ctx.client(), start_date="yesterday")
    check("junk date", bad.status_code == 400 and b"start_date" in bad.content, bad.content)


def transcript_as_roles_and_content(ctx):
    t = expect(calls_transcript_list.sync_detailed(state["call_id"], client=ctx.client()), 200, CallTranscript)
    check("call id", t.call_id == state["call_id"], t)
    check("turns", len(t.transcripts) >= 2, t.transcripts)
    check("roles", [e.role for e in t.transcripts[:2]] == ["agent", "user"], t.transcripts)
    check("content", all(isinstance(e.content, str) and e.content for e in t.transcripts), t.transcripts)
    starts = [e.start_ms for e in t.transcripts]
    check("timed from the answer", starts == sorted(starts) and starts[0] >= 0, starts)


def export_json_and_csv(ctx):
    export = expect(calls_export_list.sync_detailed(client=ctx.client()), 200, CallExport)
    check("json", (export.total, export.truncated) == (2, False), export)
    check("json ids", [c["call_id"] for c in export.calls] == [state["busy_id"], state["call_id"]], export.calls)
    only = expect(calls_export_list.sync_detailed(client=ctx.client(), status="failed"), 200, CallExport)
    check("filtered", [c["call_id"] for c in only.calls] == [state["busy_id"]] and only.total == 1, only)
    for kwargs in ({"params": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}):
        headers = {"Authorization": f"Bearer {ctx.key}", **kwargs.get("headers", {})}
        r = httpx.get(ctx.url + "/v1/calls/export", params=kwargs.get("params"), headers=headers, timeout=30.0)
        check("csv status", r.status_code == 200, r.text)
        check("csv type", r.headers["content-type"].startswith("text/csv"), r.headers)
        lines = r.text.strip().splitlines()
        check("csv header", lines[0].startswith("call_id,direction,status,from_number,to_number"), lines[0])
        check("csv rows", [line.split(",")[0] for line in lines[1:]] == [str(state["busy_id"]), str(state["call_id"])], lines)
    r = httpx.get(ctx.url + "/v1/calls/export?format=xml", headers={"Authorization": f"Bearer {ctx.key}"})
    check("unknown format", r.status_code == 400, r.text)


def history_is_the_event_timeline(ctx):
    events = expect(calls_history_list.sync_detailed(state["call_id"], client=ctx.client()), 200, None)
    types = [e["type"] for e in events]
    check("timeline", types[:3] == ["call_requested", "funds_reserved", "dial_accepted"], types)
    check("ends billed", types[-2:] == ["call_ended", "charge_settled"], types)
    moved = _api(ctx, "GET", f"/v1/calls/{state['call_id']}/events")
    check("legacy path", moved.status_code == 410, moved.text)
    check("new path", moved.json()["new_path"] == f"/v1/calls/{state['call_id']}/history", moved.text)


STEPS = [
    ("place with variables, language and idempotency_key", place_with_variables_language_and_key),
    ("same idempotency_key, other body: 409", same_key_other_body_conflicts),
    ("retrieve as the contract's Call", retrieve_as_the_contracts_call),
    ("list with every filter", list_with_every_filter),
    ("transcript", transcript_as_roles_and_content),
    ("export as JSON and CSV", export_json_and_csv),
    ("history, and /events moved", history_is_the_event_timeline),
]
