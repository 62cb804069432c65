"""Billing: the account, top-ups through the simulated payment provider, transactions, auto-reload.

The steps run in order on one org and build on each other: a top-up of $25.00, its replay, its
transaction, a declined top-up, the auto-reload settings, a reload below the minimum (the admin's
adjustments lower the balance), the monthly cap, and a declined reload. The simulated provider
declines `pm_sim_decline` and amounts ending in 02 cents (see `billing::payments`).
"""

import json
import time

import httpx
from thunderphone.generated.api.billing import (
    billing_bulk_update,
    billing_list,
    billing_top_up_create,
    billing_transactions_list,
)
from thunderphone.generated.models import (
    AutoReloadStatusEnum,
    BalanceTransaction,
    BalanceTransactionKindEnum,
    BillingAccount,
    LastTopUpKindEnum,
    PatchedAutoReloadRequest,
    TopUpRequest,
    TopUpResponse,
)

from client import check, expect

# What the steps found, for the steps after them.
seen = {}


def account(ctx):
    return expect(billing_list.sync_detailed(client=ctx.client()), 200, BillingAccount)


def raw(ctx, method, path, **kwargs):
    """A request the generated client cannot make (a query it does not send, a path it does not know)."""
    return httpx.request(method, ctx.url + path, headers={"Authorization": f"Bearer {ctx.key}"}, timeout=30.0, **kwargs)


def adjust(ctx, cents, reference):
    """The admin's adjustment: lowers (or raises) the balance without the payment provider."""
    ctx.admin("POST", f"/admin/v1/orgs/{ctx.org_id}/credits", {"amount_cents": cents, "reference": reference})


def until(ctx, what, condition, seconds=15.0):
    """Polls the account until `condition` holds: auto-reload charges after the change is durable."""
    deadline = time.monotonic() + seconds
    while True:
        a = account(ctx)
        if condition(a):
            return a
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s; the account is {a.to_dict()}")
        time.sleep(0.1)


def top_up(ctx, cents, key=None, method=None):
    body = TopUpRequest(amount_cents=cents)
    if key is not None:
        body.idempotency_key = key
    if method is not None:
        body.payment_method_id = method
    return billing_top_up_create.sync_detailed(client=ctx.client(), body=body)


def patch(ctx, **fields):
    return billing_bulk_update.sync_detailed(client=ctx.client(), body=PatchedAutoReloadRequest(**fields))


def a_new_account_is_empty(ctx):
    a = account(ctx)
    check("balance", (a.balance_cents, a.balance_usd, a.currency) == (0, "0.00", "usd"), a.to_dict())
    check("status", a.auto_reload_status == AutoReloadStatusEnum.OFF, a.auto_reload_status)
    check("never topped up", a.has_ever_topped_up is False and a.last_top_up is None, a.to_dict())
    check("no reload", a.last_auto_reload is None and a.auto_reload_month_spend_cents == 0, a.to_dict())
    check("extra keys kept", a["reserved_cents"] == 0 and a["available_cents"] == 0, a.additional_properties)


def the_old_balance_path_moved(ctx):
    r = raw(ctx, "GET", "/v1/billing/balance")
    check("410", r.status_code == 410, r.text)
    check("new path", r.json()["new_path"] == "/v1/billing", r.text)


def a_top_up_is_charged_and_credited(ctx):
    created = expect(top_up(ctx, 2500, key="top-up-1", method="pm_card_visa"), 201, TopUpResponse)
    check("succeeded", created.status == "succeeded", created.to_dict())
    check("intent", created.payment_intent_id.startswith("pi_") and created.client_secret is None, created.to_dict())
    seen["intent"] = created.payment_intent_id
    a = account(ctx)
    check("balance", (a.balance_cents, a.balance_usd) == (2500, "25.00"), a.to_dict())
    check("last top-up", a.last_top_up is not None and a.last_top_up.kind == LastTopUpKindEnum.MANUAL, a.to_dict())
    check("its amount", a.last_top_up.amount_cents == 2500, a.to_dict())
    check("topped up", a.has_ever_topped_up and a.has_payment_method, a.to_dict())
    check("its intent", a.last_manual_topup_intent_id == created.payment_intent_id, a.to_dict())


def a_replayed_top_up_credits_nothing(ctx):
    again = expect(top_up(ctx, 2500, key="top-up-1", method="pm_card_visa"), 201, TopUpResponse)
    check("same intent", again.payment_intent_id == seen["intent"], again.to_dict())
    check("still 25.00", account(ctx).balance_cents == 2500)
    other = top_up(ctx, 900, key="top-up-1")
    check("another amount under the key is a conflict", other.status_code == 409, other.content)


def the_top_up_is_a_transaction(ctx):
    txs = expect(billing_transactions_list.sync_detailed(client=ctx.client()), 200, [BalanceTransaction])
    check("one", len(txs) == 1, [t.to_dict() for t in txs])
    t = txs[0]
    check("kind", t.kind == BalanceTransactionKindEnum.MANUAL_TOPUP, t.to_dict())
    check("amount", (t.amount_cents, t.amount_usd, t.call_id) == (2500, "25.00", None), t.to_dict())
    check("neutral fields", t.has_receipt is False and t.phone_number_id is None, t.to_dict())
    check("its intent", t.metadata["reference"] == seen["intent"], t.to_dict())
    # With limit or offset, the seed's envelope.
    page = raw(ctx, "GET", "/v1/billing/transactions", params={"limit": 1, "offset": 0}).json()
    check("envelope", (page["total"], page["limit"], page["offset"]) == (1, 1, 0), page)
    check("its result", BalanceTransaction.from_dict(page["results"][0]).id == t.id, page)


def a_declined_top_up_credits_nothing(ctx):
    r = top_up(ctx, 1000, key="top-up-declined", method="pm_sim_decline")
    check("402", r.status_code == 402, r.content)
    body = json.loads(r.content)
    check("the provider's code", body["code"] == "card_declined" and body["payment_intent_id"].startswith("pi_"), body)
    a = account(ctx)
    check("balance unchanged", a.balance_cents == 2500, a.to_dict())
    check("the error", a.last_manual_topup_error == "Your card was declined.", a.to_dict())
    check("its intent", a.last_manual_topup_intent_id == body["payment_intent_id"], a.to_dict())
    bad = top_up(ctx, 50)
    check("below the minimum amount", bad.status_code == 400, bad.content)


def auto_reload_settings_are_bounded(ctx):
    for fields in [{"auto_reload_amount_cents": 50}, {"auto_reload_minimum_cents": -1},
                   {"auto_reload_monthly_limit_cents": 10}]:
        r = patch(ctx, **fields)
        check(f"{fields} refused", r.status_code == 400, r.content)
    body = PatchedAutoReloadRequest(auto_reload_enabled=True)
    body.additional_properties["auto_reload_bogus"] = 1
    r = billing_bulk_update.sync_detailed(client=ctx.client(), body=body)
    check("unknown field refused", r.status_code == 400, r.content)
    check("nothing stored", account(ctx).auto_reload_enabled is False)


def auto_reload_settings_are_stored(ctx):
    a = expect(patch(ctx, auto_reload_enabled=True, auto_reload_amount_cents=1000, auto_reload_minimum_cents=500,
                     auto_reload_monthly_limit_cents=2500), 200, BillingAccount)
    fields = (a.auto_reload_enabled, a.auto_reload_amount_cents, a.auto_reload_minimum_cents,
              a.auto_reload_monthly_limit_cents, a.auto_reload_status)
    check("answered", fields == (True, 1000, 500, 2500, AutoReloadStatusEnum.OK), a.to_dict())
    b = account(ctx)
    check("read back", (b.auto_reload_enabled, b.auto_reload_amount_cents, b.auto_reload_minimum_cents,
                        b.auto_reload_monthly_limit_cents) == (True, 1000, 500, 2500), b.to_dict())
    check("nothing charged above the minimum", b.balance_cents == 2500 and b.last_auto_reload is None, b.to_dict())


def auto_reload_charges_below_the_minimum(ctx):
    adjust(ctx, -2100, "debit-1")  # 2500 -> 400, below 500
    a = until(ctx, "the reload", lambda a: a.last_auto_reload is not None)
    check("reloaded", (a.balance_cents, a.last_auto_reload.amount_cents) == (1400, 1000), a.to_dict())
    check("month spend", a.auto_reload_month_spend_cents == 1000, a.to_dict())
    check("last top-up is automatic", a.last_top_up.kind == LastTopUpKindEnum.AUTO, a.to_dict())
    txs = expect(billing_transactions_list.sync_detailed(client=ctx.client()), 200, [BalanceTransaction])
    kinds = [(t.kind, t.amount_cents) for t in txs]
    check("newest first", kinds[:2] == [(BalanceTransactionKindEnum.AUTO_RELOAD, 1000),
                                       (BalanceTransactionKindEnum.ADJUSTMENT, -2100)], kinds)
    check("usd of a debit", txs[1].amount_usd == "-21.00", txs[1].to_dict())


def the_monthly_cap_holds(ctx):
    adjust(ctx, -1000, "debit-2")  # 1400 -> 400: a second reload, 2000 of 2500 this month
    a = until(ctx, "the second reload", lambda a: a.auto_reload_month_spend_cents == 2000)
    check("reloaded", a.balance_cents == 1400, a.to_dict())
    adjust(ctx, -1000, "debit-3")  # 1400 -> 400: a third would make 3000 of 2500
    a = until(ctx, "capped", lambda a: a.auto_reload_status == AutoReloadStatusEnum.CAPPED)
    time.sleep(0.5)
    a = account(ctx)
    check("no third reload", (a.balance_cents, a.auto_reload_month_spend_cents) == (400, 2000), a.to_dict())


def a_declined_reload_is_retried_later(ctx):
    # Uncapped, and an amount the simulated provider declines ($10.02).
    a = expect(patch(ctx, auto_reload_amount_cents=1002, auto_reload_monthly_limit_cents=None), 200, BillingAccount)
    check("uncapped", a.auto_reload_monthly_limit_cents is None, a.to_dict())
    a = until(ctx, "the decline", lambda a: a.auto_reload_consecutive_declines == 1)
    check("retrying", a.auto_reload_status == AutoReloadStatusEnum.RETRYING, a.to_dict())
    check("why", (a.auto_reload_failure_code, a.auto_reload_last_error) == ("card_declined", "Your card was declined."),
          a.to_dict())
    check("what", a.auto_reload_failed_amount_cents == 1002 and a.auto_reload_failed_at is not None, a.to_dict())
    check("when again", a.auto_reload_next_retry_at is not None, a.to_dict())
    check("nothing credited", a.balance_cents == 400, a.to_dict())
    a = expect(patch(ctx, auto_reload_enabled=False), 200, BillingAccount)
    check("off", a.auto_reload_status == AutoReloadStatusEnum.OFF, a.to_dict())


STEPS = [
    ("a new account is empty", a_new_account_is_empty),
    ("GET /v1/billing/balance moved", the_old_balance_path_moved),
    ("a top-up is charged and credited", a_top_up_is_charged_and_credited),
    ("a replayed top-up credits nothing", a_replayed_top_up_credits_nothing),
    ("the top-up is a transaction", the_top_up_is_a_transaction),
    ("a declined top-up credits nothing", a_declined_top_up_credits_nothing),
    ("auto-reload settings are bounded", auto_reload_settings_are_bounded),
    ("auto-reload settings are stored", auto_reload_settings_are_stored),
    ("auto-reload charges below the minimum", auto_reload_charges_below_the_minimum),
    ("the monthly cap holds", the_monthly_cap_holds),
    ("a declined reload is retried later", a_declined_reload_is_retried_later),
]
