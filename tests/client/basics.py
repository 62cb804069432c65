"""healthz and whoami."""

from thunderphone.generated.api.authentication import whoami_list
from thunderphone.generated.api.healthz import healthz_list
from thunderphone.generated.client import Client
from thunderphone.generated.models import CredentialKindEnum, Health, WhoAmI

from client import expect


def healthz(ctx):
    health = expect(healthz_list.sync_detailed(client=Client(base_url=ctx.url)), 200, Health)
    assert health.ok is True


def whoami(ctx):
    me = expect(whoami_list.sync_detailed(client=ctx.client()), 200, WhoAmI)
    assert me.credential_kind == CredentialKindEnum.API_KEY, me
    assert me.organization.id == ctx.org_id, me
    assert me.key_prefix and ctx.key.startswith(me.key_prefix), me
    assert isinstance(me.key_label, str) and me.key_label, me


STEPS = [("healthz", healthz), ("whoami", whoami)]
