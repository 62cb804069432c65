"""Drives switchboard with ThunderPhone's official Python client (`thunderphone` 0.2.0), unchanged.

Run as `python3 tests/client/client.py AREA` (areas: the modules beside this file) with
SWITCHBOARD_URL, SWITCHBOARD_KEY (an org's API key), SWITCHBOARD_ORG_ID, SWITCHBOARD_ADMIN_URL and
SWITCHBOARD_ADMIN_TOKEN in the environment; the end-to-end suite (`tests/tests/api/official_client.rs`)
starts a server and does that. Every operation goes through the generated `sync_detailed`
function, whose parse of the response is the check: a response the client cannot parse raises
out of it, and a status the client does not list leaves `parsed` empty, which `expect` refuses.
"""

import importlib
import json
import os
import sys
import traceback
from dataclasses import dataclass

import httpx
from thunderphone.generated.client import AuthenticatedClient


@dataclass
class Context:
    url: str
    key: str
    org_id: int
    admin_url: str
    admin_token: str

    def client(self, key=None):
        return AuthenticatedClient(base_url=self.url, token=key or self.key, timeout=httpx.Timeout(30.0))

    def admin(self, method, path, body=None):
        """The admin API, which the official client does not know: funds, rates, limits."""
        r = httpx.request(
            method,
            self.admin_url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30.0,
        )
        if r.status_code >= 300:
            raise AssertionError(f"admin {method} {path}: {r.status_code} {r.text}")
        return r.json() if r.content else None


def expect(response, status, model=None):
    """The response has `status` and, when `model` is given, the client parsed it as `model`."""
    body = response.content.decode(errors="replace")
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {body}"
    if model is not None:
        parsed = response.parsed
        if isinstance(model, list):
            assert isinstance(parsed, list), f"expected a list of {model[0].__name__}, got {parsed!r}"
            assert all(isinstance(item, model[0]) for item in parsed), parsed
        else:
            assert isinstance(parsed, model), f"expected {model.__name__}, got {parsed!r}: {body}"
    return response.parsed


def parse_as(response, status, model):
    """For a status the client does not list although the seed says it (a 201 where the generated
    code parses only 200): the body still parses with the client's own model."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.content!r}"
    return model.from_dict(json.loads(response.content))


def check(name, condition, detail=""):
    assert condition, f"{name}: {detail}"


def main():
    area = sys.argv[1]
    context = Context(
        url=os.environ["SWITCHBOARD_URL"],
        key=os.environ["SWITCHBOARD_KEY"],
        org_id=int(os.environ["SWITCHBOARD_ORG_ID"]),
        admin_url=os.environ["SWITCHBOARD_ADMIN_URL"],
        admin_token=os.environ["SWITCHBOARD_ADMIN_TOKEN"],
    )
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    module = importlib.import_module(area)
    failures = 0
    for name, step in module.STEPS:
        try:
            step(context)
            print(f"ok    {area}: {name}")
        except Exception:  # every failure is reported, then the run fails
            failures += 1
            print(f"FAIL  {area}: {name}")
            traceback.print_exc(file=sys.stdout)
    print(f"{area}: {len(module.STEPS) - failures} of {len(module.STEPS)} steps passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
