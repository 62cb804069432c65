"""VoIP connections and phone numbers: test a connection, create it on the evidence, import a
number, verify it, update it, provision a demo number, release numbers, delete the connection."""

from uuid import UUID

import httpx
from thunderphone.generated.api.phone_numbers import (
    phone_numbers_create,
    phone_numbers_delete,
    phone_numbers_list,
    phone_numbers_partial_update,
    phone_numbers_retrieve,
    phone_numbers_update,
    phone_numbers_verify_voip,
)
from thunderphone.generated.api.voip_connections import (
    voip_connections_create,
    voip_connections_delete,
    voip_connections_import_numbers,
    voip_connections_list,
    voip_connections_partial_update,
    voip_connections_search_numbers_list,
    voip_connections_sip_host_list,
    voip_connections_test_create,
)
from thunderphone.generated.models import (
    ConnectionTest,
    ImportedNumbers,
    NumberVerification,
    OutboundStatusEnum,
    PatchedPhoneNumberUpdateRequest,
    PatchedVoipConnectionUpdateRequest,
    PhoneNumber,
    PhoneNumberProvisionRequest,
    PhoneNumberReleased,
    PhoneNumberSourceEnum,
    PhoneNumbersVerifyVoipBody,
    PhoneNumberUpdate,
    PhoneNumberUpdateRequest,
    ProviderEnum,
    VoipConnection,
    VoipConnectionCreateRequest,
    VoipConnectionStatusEnum,
    VoipConnectionTestRequest,
    VoipNumberImportRequest,
    VoipSipHost,
    VoipVerificationStatusEnum,
)
from thunderphone.generated.models.voip_connections_search_numbers_list_type import (
    VoipConnectionsSearchNumbersListType,
)

from client import expect

NUMBER = "+14155550142"
SIM = {"host": "sim"}
# What the steps made, for the steps after them.
made = {}


def raw(ctx, method, path, body=None):
    """A request the client does not make (another area's operation, or a path of old)."""
    return httpx.request(
        method, ctx.url + path, json=body, headers={"Authorization": f"Bearer {ctx.key}"}, timeout=30.0
    )


def sip_host(ctx):
    host = expect(voip_connections_sip_host_list.sync_detailed(client=ctx.client()), 200, VoipSipHost)
    assert host.sip_host is None, host


def test_connection(ctx):
    body = VoipConnectionTestRequest(provider=ProviderEnum.MANUAL, sip_config=SIM, target_number=NUMBER)
    tested = expect(voip_connections_test_create.sync_detailed(client=ctx.client(), body=body), 201, ConnectionTest)
    evidence = tested.verification_evidence
    assert evidence.outbound_status == OutboundStatusEnum.PASS, tested
    assert evidence.provider == ProviderEnum.MANUAL, tested
    assert isinstance(evidence.id, UUID), tested
    made["evidence"] = evidence.id


def create_connection(ctx):
    body = VoipConnectionCreateRequest(
        provider=ProviderEnum.MANUAL, verification_evidence_id=made["evidence"], sip_config=SIM, name="Lab"
    )
    conn = expect(voip_connections_create.sync_detailed(client=ctx.client(), body=body), 201, VoipConnection)
    assert (conn.name, conn.status, conn.provider) == ("Lab", VoipConnectionStatusEnum.CONNECTED, ProviderEnum.MANUAL)
    assert conn.sip_config.additional_properties == SIM, conn.sip_config
    assert conn.numbers_imported == 0, conn
    made["connection"] = conn.id


def evidence_backs_one_create(ctx):
    body = VoipConnectionCreateRequest(
        provider=ProviderEnum.MANUAL, verification_evidence_id=made["evidence"], sip_config=SIM
    )
    r = voip_connections_create.sync_detailed(client=ctx.client(), body=body)
    assert r.status_code == 400 and b"verification_evidence_id" in r.content, r.content


def a_sip_trunk_keeps_its_password(ctx):
    # A trunk nobody answers at: the test fails, says so, and backs no create.
    config = {"host": "127.0.0.1", "port": 9, "transport": "udp"}
    credentials = {"username": "alice", "password": "never-shown-7731"}
    body = VoipConnectionTestRequest(provider=ProviderEnum.MANUAL, sip_config=config, credentials=credentials)
    r = voip_connections_test_create.sync_detailed(client=ctx.client(), body=body)
    tested = expect(r, 201, ConnectionTest)
    assert tested.verification_evidence.outbound_status == OutboundStatusEnum.FAIL, tested
    assert b"never-shown-7731" not in r.content, r.content
    create = VoipConnectionCreateRequest(
        provider=ProviderEnum.MANUAL,
        verification_evidence_id=tested.verification_evidence.id,
        sip_config=config,
        credentials=credentials,
    )
    assert voip_connections_create.sync_detailed(client=ctx.client(), body=create).status_code == 400


def list_connections(ctx):
    listed = expect(voip_connections_list.sync_detailed(client=ctx.client()), 200, [VoipConnection])
    assert [c.id for c in listed] == [made["connection"]], listed


def rename_connection(ctx):
    body = PatchedVoipConnectionUpdateRequest(name="Lab 2")
    r = voip_connections_partial_update.sync_detailed(made["connection"], client=ctx.client(), body=body)
    assert expect(r, 200, VoipConnection).name == "Lab 2"
    # A new configuration needs the evidence of its own test.
    body = PatchedVoipConnectionUpdateRequest(sip_config=SIM)
    r = voip_connections_partial_update.sync_detailed(made["connection"], client=ctx.client(), body=body)
    assert r.status_code == 400, r.content


def provider_apis_say_what_they_cannot_do(ctx):
    r = voip_connections_search_numbers_list.sync_detailed(
        made["connection"], client=ctx.client(), country="US", type_=VoipConnectionsSearchNumbersListType.LOCAL
    )
    assert r.status_code == 400 and b"provider_api_unsupported" in r.content, r.content


def import_number(ctx):
    body = VoipNumberImportRequest(numbers=[NUMBER])
    r = voip_connections_import_numbers.sync_detailed(made["connection"], client=ctx.client(), body=body)
    imported = expect(r, 201, ImportedNumbers)
    assert imported.imported_count == 1 and imported.results[0].number == NUMBER, imported
    made["number"] = imported.results[0].id


def an_imported_number_is_unverified(ctx):
    n = expect(phone_numbers_retrieve.sync_detailed(made["number"], client=ctx.client()), 200, PhoneNumber)
    assert (n.number, n.source, n.voip_connection_id) == (NUMBER, PhoneNumberSourceEnum.VOIP, made["connection"]), n
    assert n.voip_verification_status == VoipVerificationStatusEnum.UNVERIFIED, n
    assert n.outbound_eligible is False and n.outbound_ineligible_reason, n


def an_unverified_number_places_no_call(ctx):
    ctx.admin("POST", f"/admin/v1/orgs/{ctx.org_id}/credits", {"amount_cents": 500, "reference": "voip"})
    agent = raw(ctx, "POST", "/v1/agents", {"name": "Support", "prompt": "You help.", "voice": "coral"})
    assert agent.status_code == 201, agent.text
    made["agent"] = agent.json()["id"]
    r = raw(ctx, "POST", "/v1/call", {"from_number": NUMBER, "to_number": "+14155550123", "agent_id": made["agent"]})
    assert r.status_code == 403 and "not verified" in r.json()["detail"], r.text


def verify_number(ctx):
    r = phone_numbers_verify_voip.sync_detailed(made["number"], client=ctx.client(), body=PhoneNumbersVerifyVoipBody())
    verification = expect(r, 200, NumberVerification)
    assert (verification.phone_number_id, verification.voip_verification_status) == (made["number"], "verified")
    assert isinstance(verification.verification_evidence.id, UUID), verification
    n = expect(phone_numbers_retrieve.sync_detailed(made["number"], client=ctx.client()), 200, PhoneNumber)
    assert n.voip_verification_status == VoipVerificationStatusEnum.VERIFIED, n
    assert n.outbound_eligible is True and n.outbound_ineligible_reason is None, n
    assert n.voip_last_verified_at is not None, n


def update_number(ctx):
    body = PatchedPhoneNumberUpdateRequest(
        label="Main line", inbound_agent_id=made["agent"], webhook_url="https://example.com/inbound"
    )
    r = phone_numbers_partial_update.sync_detailed(made["number"], client=ctx.client(), body=body)
    updated = expect(r, 200, PhoneNumberUpdate)
    assert (updated.label, updated.inbound_agent_id) == ("Main line", made["agent"]), updated
    r = phone_numbers_update.sync_detailed(
        made["number"], client=ctx.client(), body=PhoneNumberUpdateRequest(outbound_agent_id=made["agent"])
    )
    expect(r, 200, PhoneNumberUpdate)
    n = expect(phone_numbers_retrieve.sync_detailed(made["number"], client=ctx.client()), 200, PhoneNumber)
    assert (n.label, n.webhook_url, n.inbound_agent_id, n.outbound_agent_id) == (
        "Main line",
        "https://example.com/inbound",
        made["agent"],
        made["agent"],
    ), n
    r = phone_numbers_partial_update.sync_detailed(
        made["number"], client=ctx.client(), body=PatchedPhoneNumberUpdateRequest(inbound_agent_id=999_999_999)
    )
    assert r.status_code == 400, r.content


def a_verified_number_places_calls(ctx):
    r = raw(ctx, "POST", "/v1/call", {"from_number": NUMBER, "to_number": "+14155550123", "agent_id": made["agent"]})
    assert r.status_code == 201, r.text


def provision_demo_number(ctx):
    body = PhoneNumberProvisionRequest(area_code="415", city="San Francisco", state="CA")
    demo = expect(phone_numbers_create.sync_detailed(client=ctx.client(), body=body), 201, PhoneNumber)
    assert demo.source == PhoneNumberSourceEnum.DEMO and demo.outbound_eligible is False, demo
    made["demo"] = demo.id
    listed = expect(phone_numbers_list.sync_detailed(client=ctx.client()), 200, [PhoneNumber])
    assert sorted(n.id for n in listed) == sorted([made["number"], made["demo"]]), listed
    r = phone_numbers_verify_voip.sync_detailed(made["demo"], client=ctx.client(), body=PhoneNumbersVerifyVoipBody())
    assert r.status_code == 409, r.content


def release_numbers(ctx):
    r = phone_numbers_delete.sync_detailed(made["demo"], client=ctx.client(), confirm=False)
    assert r.status_code == 400, r.content
    for number in [made["demo"], made["number"]]:
        released = expect(
            phone_numbers_delete.sync_detailed(number, client=ctx.client(), confirm=True), 200, PhoneNumberReleased
        )
        assert released.routing_removed is True, released
    r = phone_numbers_retrieve.sync_detailed(made["number"], client=ctx.client())
    assert r.status_code == 404, r.content


def delete_connection(ctx):
    expect(voip_connections_delete.sync_detailed(made["connection"], client=ctx.client()), 204)
    assert expect(voip_connections_list.sync_detailed(client=ctx.client()), 200, [VoipConnection]) == []


def old_paths_say_where_they_went(ctx):
    for path, new in [
        ("/v1/voip-connections/1/verify", "/v1/voip-connections/test"),
        ("/v1/phone-numbers/demo", "/v1/phone-numbers"),
    ]:
        r = raw(ctx, "POST", path, {})
        assert r.status_code == 410 and r.json()["new_path"] == new, r.text


STEPS = [
    ("sip_host", sip_host),
    ("test_connection", test_connection),
    ("create_connection", create_connection),
    ("evidence_backs_one_create", evidence_backs_one_create),
    ("a_sip_trunk_keeps_its_password", a_sip_trunk_keeps_its_password),
    ("list_connections", list_connections),
    ("rename_connection", rename_connection),
    ("provider_apis_say_what_they_cannot_do", provider_apis_say_what_they_cannot_do),
    ("import_number", import_number),
    ("an_imported_number_is_unverified", an_imported_number_is_unverified),
    ("an_unverified_number_places_no_call", an_unverified_number_places_no_call),
    ("verify_number", verify_number),
    ("update_number", update_number),
    ("a_verified_number_places_calls", a_verified_number_places_calls),
    ("provision_demo_number", provision_demo_number),
    ("release_numbers", release_numbers),
    ("delete_connection", delete_connection),
    ("old_paths_say_where_they_went", old_paths_say_where_they_went),
]
