"""Test calls, test-call batches and their `/v1/simulations` aliases, through the official client.

`POST /v1/test-calls` (and `/v1/simulations`) answers 201 as seed 003 says, where the generated
code parses only a 200: those bodies are parsed with the client's own `SimulationRun` (`parse_as`).
A batch's 201 already lists every run: its runs are created queued and launched apart.
"""

import time

import httpx
from thunderphone.generated.api.simulations import (
    simulations_batches_create,
    simulations_batches_list,
    simulations_batches_retrieve,
    simulations_create,
    simulations_list,
)
from thunderphone.generated.api.test_call_batches import (
    test_call_batches_create,
    test_call_batches_list,
    test_call_batches_retrieve,
)
from thunderphone.generated.api.test_calls import test_calls_create, test_calls_list
from thunderphone.generated.models import (
    DirectionD75Enum,
    SimulationBatch,
    SimulationBatchCreateRequest,
    SimulationBatchStatusEnum,
    SimulationRun,
    SimulationRunCreateRequest,
    SimulationRunModeEnum,
    SimulationRunStatusEnum,
    TargetTypeEnum,
)

from client import expect, parse_as

# What the steps share: the agent under test, and what earlier steps created.
state = {}

SETTLE_SECONDS = 30


def poll(fetch, done, what):
    """Fetches until `done` holds of the result, for at most SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what} never settled: {value!r}"
        time.sleep(0.2)


def ready(ctx):
    """The org has funds and an agent (set up through httpx: other areas own those APIs)."""
    ctx.admin("POST", f"/admin/v1/orgs/{ctx.org_id}/credits", {"amount_cents": 5_000, "reference": "test-calls"})
    r = httpx.post(
        ctx.url + "/v1/agents",
        json={"name": "Refund desk", "prompt": "You handle refunds.", "voice": "coral"},
        headers={"Authorization": f"Bearer {ctx.key}"},
        timeout=30.0,
    )
    assert r.status_code == 201, f"agent: {r.status_code} {r.text}"
    state["agent"] = r.json()["id"]


def run_request(ctx, prompt):
    # Every field the model sends is set, the "always sent" defaults among them.
    return SimulationRunCreateRequest(
        consent_to_charge=True,
        target_id=state["agent"],
        target_type=TargetTypeEnum.AGENT,
        scenario_prompt=prompt,
        language="en",
        primary_language="en-US",
    )


def run_create(ctx):
    response = test_calls_create.sync_detailed(client=ctx.client(), body=run_request(ctx, "Ask about a refund."))
    run = parse_as(response, 201, SimulationRun)
    assert run.target_id == state["agent"] and run.target_type == TargetTypeEnum.AGENT, run
    assert run.status == SimulationRunStatusEnum.QUEUED, run
    assert (run.direction, run.mode, run.charge_multiplier) == (DirectionD75Enum.OUTBOUND, SimulationRunModeEnum.BOT, 2)
    assert (run.agent_name, run.target_name) == ("Refund desk", "Refund desk"), run
    assert run.scenario_prompt == "Ask about a refund.", run
    assert isinstance(run.call_id, int) and run.estimated_cost_cents >= 1, run
    assert run.grade is None and run.recording_url is None and run.transcript == [], run
    assert run.completed_at is None and run.error_message == "", run
    state["run"] = run.id


def runs_list(ctx):
    runs = expect(test_calls_list.sync_detailed(client=ctx.client()), 200, [SimulationRun])
    assert [r.id for r in runs] == [state["run"]], runs

    def fetch():
        runs = expect(test_calls_list.sync_detailed(client=ctx.client()), 200, [SimulationRun])
        return next(r for r in runs if r.id == state["run"])

    run = poll(fetch, lambda r: r.status in (SimulationRunStatusEnum.COMPLETED, SimulationRunStatusEnum.FAILED), "run")
    assert run.status == SimulationRunStatusEnum.COMPLETED, run
    assert run.completed_at >= run.started_at and isinstance(run.duration_seconds, int), run
    spoken = [item.additional_properties for item in run.transcript]
    assert any(t["role"] == "callee" and "Ask about a refund." in t["content"] for t in spoken), spoken


def batch_request(ctx, run_count, stagger_seconds):
    return SimulationBatchCreateRequest(
        consent_to_charge=True,
        target_id=state["agent"],
        target_type=TargetTypeEnum.AGENT,
        name="Nightly",
        run_count=run_count,
        stagger_seconds=stagger_seconds,
        scenario_prompts=["Ask about refunds.", "Ask for hours."],
        language="en",
    )


def batch_create(ctx):
    response = test_call_batches_create.sync_detailed(client=ctx.client(), body=batch_request(ctx, 3, 1))
    batch = expect(response, 201, SimulationBatch)
    # The seed's rule: the 201 already lists every run, queued but the first.
    assert len(batch.run_ids) == 3 and batch.total_runs == 3 and batch.run_count == 3, batch
    assert batch.status == SimulationBatchStatusEnum.IN_PROGRESS, batch
    assert (batch.name, batch.stagger_seconds, batch.target_id) == ("Nightly", 1, state["agent"]), batch
    assert batch.scenario_prompts == ["Ask about refunds.", "Ask for hours."], batch
    assert batch.started_at is not None and batch.completed_at is None, batch
    assert batch.estimated_cost_cents >= 3 and batch.estimated_minutes >= 3, batch
    runs = {r.id: r for r in expect(test_calls_list.sync_detailed(client=ctx.client()), 200, [SimulationRun])}
    assert runs[batch.run_ids[2]].status == SimulationRunStatusEnum.QUEUED, runs[batch.run_ids[2]]
    assert runs[batch.run_ids[2]].call_id is None, runs[batch.run_ids[2]]
    assert [runs[i].scenario_prompt for i in batch.run_ids] == ["Ask about refunds.", "Ask for hours.", "Ask about refunds."]
    state["batch"] = batch


def batch_list_and_retrieve(ctx):
    created = state["batch"]
    listed = expect(test_call_batches_list.sync_detailed(client=ctx.client()), 200, [SimulationBatch])
    assert [b.id for b in listed] == [created.id], listed

    def fetch():
        return expect(test_call_batches_retrieve.sync_detailed(created.id, client=ctx.client()), 200, SimulationBatch)

    done = poll(fetch, lambda b: b.status in (SimulationBatchStatusEnum.COMPLETED, SimulationBatchStatusEnum.FAILED), "batch")
    assert done.status == SimulationBatchStatusEnum.COMPLETED, done
    assert (done.completed_runs, done.failed_runs, done.run_ids) == (3, 0, created.run_ids), done
    runs = {r.id: r for r in expect(test_calls_list.sync_detailed(client=ctx.client()), 200, [SimulationRun])}
    started = [runs[i].started_at for i in created.run_ids]
    gaps = [(b - a).total_seconds() for a, b in zip(started, started[1:])]
    assert all(gap >= 0.9 for gap in gaps), f"runs launched {gaps} s apart, stagger 1 s"


def simulations_aliases(ctx):
    run = parse_as(simulations_create.sync_detailed(client=ctx.client(), body=run_request(ctx, "Alias.")), 201, SimulationRun)
    assert run.scenario_prompt == "Alias." and run.status == SimulationRunStatusEnum.QUEUED, run
    listed = expect(simulations_list.sync_detailed(client=ctx.client()), 200, [SimulationRun])
    assert listed[0].id == run.id, listed
    batch = expect(
        simulations_batches_create.sync_detailed(client=ctx.client(), body=batch_request(ctx, 2, 0)), 201, SimulationBatch
    )
    assert len(batch.run_ids) == 2, batch
    batches = expect(simulations_batches_list.sync_detailed(client=ctx.client()), 200, [SimulationBatch])
    assert [b.id for b in batches] == [batch.id, state["batch"].id], batches
    again = expect(simulations_batches_retrieve.sync_detailed(batch.id, client=ctx.client()), 200, SimulationBatch)
    assert (again.id, again.run_ids, again.name) == (batch.id, batch.run_ids, "Nightly"), again


def refusals(ctx):
    refused = SimulationRunCreateRequest(consent_to_charge=False, target_id=state["agent"], target_type=TargetTypeEnum.AGENT)
    response = test_calls_create.sync_detailed(client=ctx.client(), body=refused)
    assert response.status_code == 400 and b"consent_to_charge" in response.content, response
    missing = SimulationRunCreateRequest(consent_to_charge=True, target_id=999_999_999, target_type=TargetTypeEnum.AGENT)
    assert test_calls_create.sync_detailed(client=ctx.client(), body=missing).status_code == 404
    response = test_call_batches_retrieve.sync_detailed(999_999_999, client=ctx.client())
    assert response.status_code == 404 and response.parsed is None, response


STEPS = [
    ("ready", ready),
    ("test_calls_create (201)", run_create),
    ("test_calls_list", runs_list),
    ("test_call_batches_create", batch_create),
    ("test_call_batches_list, retrieve", batch_list_and_retrieve),
    ("simulations aliases", simulations_aliases),
    ("refusals", refusals),
]
