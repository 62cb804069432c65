//! How an org's prepaid balance is funded: top-ups charged through the payment provider, and
//! auto-reload, which charges a set amount when the available balance falls below a minimum.
//!
//! A charge is a side effect, so it is decided and recorded first (`charge_requested`, with the
//! intent id the provider is called with as its idempotency key), performed by the ledger's
//! owner once that is durable, and its outcome recorded (`charge_succeeded`, with the credit
//! posted in the same append, or `charge_declined`). Only a pending charge takes an outcome, so
//! a repeated or late report never credits twice; a charge still pending after a restart is
//! performed again under the same intent id, which the provider answers as it did before.
//!
//! [`Funding`] is what the ledger folds for these rules and for the account the API shows: the
//! auto-reload settings, the charges in flight, the declines in a row, this month's spend, the
//! last credits. It stays small however long the org has paid.

use std::collections::BTreeMap;

use chrono::Datelike;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::ledger::{Balances, LedgerEvent};

/// The smallest and largest top-up the API takes: $1 to $10,000.
pub const MIN_TOP_UP_CENTS: i64 = 100;
pub const MAX_TOP_UP_CENTS: i64 = 1_000_000;
/// Auto-reload's amount: $1 to $10,000 a reload.
pub const MIN_RELOAD_CENTS: i64 = 100;
pub const MAX_RELOAD_CENTS: i64 = 1_000_000;
/// Auto-reload's threshold: up to $10,000 (0 never reloads).
pub const MAX_RELOAD_MINIMUM_CENTS: i64 = 1_000_000;
/// Auto-reload's monthly cap: $1 to $1,000,000 a month, or none.
pub const MIN_MONTHLY_LIMIT_CENTS: i64 = 100;
pub const MAX_MONTHLY_LIMIT_CENTS: i64 = 100_000_000;
/// Idempotency keys and payment method ids are at most this long.
pub const MAX_KEY_CHARS: usize = 255;
/// Declines in a row after which auto-reload stops until its settings change or a top-up
/// succeeds.
pub const MAX_CONSECUTIVE_DECLINES: u32 = 3;
/// How long after a decline auto-reload tries again, times the declines in a row.
pub const RETRY_AFTER_MS: i64 = 3_600_000;
/// The days `average_daily_spend_cents_7d` averages over.
const SPEND_WINDOW_DAYS: i64 = 7;
const DAY_MS: i64 = 86_400_000;

/// What a charge is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargePurpose {
    /// A top-up the org asked for.
    TopUp,
    /// Auto-reload, below the minimum.
    AutoReload,
}

/// A charge decided and recorded, to be (or being) performed through the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The payment intent: unique, and the provider's idempotency key for this charge.
    pub intent_id: String,
    pub purpose: ChargePurpose,
    pub amount_cents: i64,
    /// The card to charge; `None`: the org's default with the provider.
    pub payment_method_id: Option<String>,
    /// Where the charge is recorded for a top-up's idempotency key (`top-up/<key>`).
    pub reference: Option<String>,
}

/// What the provider answered a charge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargeOutcome {
    /// The money moved; `provider_reference` is the provider's id of the charge.
    Succeeded { provider_reference: String },
    /// The provider refused the charge (a decline, not a failure to reach it).
    Declined { code: String, message: String },
}

/// Where a charge stands, as a top-up's caller is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargeState {
    Pending,
    Succeeded { transaction_id: u64 },
    Declined { code: String, message: String },
}

/// A charge and where it stands: what a top-up answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeView {
    pub intent_id: String,
    pub amount_cents: i64,
    pub state: ChargeState,
}

/// The reference a top-up's idempotency key records its charge under.
pub fn top_up_reference(idempotency_key: &str) -> String {
    format!("top-up/{idempotency_key}")
}

/// The auto-reload settings (`PATCH /v1/billing`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoReloadSettings {
    pub enabled: bool,
    pub amount_cents: i64,
    pub minimum_cents: i64,
    pub monthly_limit_cents: Option<i64>,
}

impl Default for AutoReloadSettings {
    /// Off; when turned on without amounts, $20 whenever the balance falls below $5, uncapped.
    fn default() -> Self {
        Self { enabled: false, amount_cents: 2_000, minimum_cents: 500, monthly_limit_cents: None }
    }
}

/// A change to the settings: what is `None` stays; `monthly_limit_cents: Some(None)` lifts the cap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutoReloadPatch {
    pub enabled: Option<bool>,
    pub amount_cents: Option<i64>,
    pub minimum_cents: Option<i64>,
    pub monthly_limit_cents: Option<Option<i64>>,
}

fn between(field: &'static str, value: i64, min: i64, max: i64) -> Result<i64, (&'static str, String)> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err((field, format!("Ensure this value is between {min} and {max}.")))
    }
}

impl AutoReloadSettings {
    /// The settings with `patch` applied, or the first field out of bounds and why.
    pub fn patched(&self, patch: &AutoReloadPatch) -> Result<Self, (&'static str, String)> {
        let mut next = self.clone();
        if let Some(enabled) = patch.enabled {
            next.enabled = enabled;
        }
        if let Some(amount) = patch.amount_cents {
            next.amount_cents = between("auto_reload_amount_cents", amount, MIN_RELOAD_CENTS, MAX_RELOAD_CENTS)?;
        }
        if let Some(minimum) = patch.minimum_cents {
            next.minimum_cents = between("auto_reload_minimum_cents", minimum, 0, MAX_RELOAD_MINIMUM_CENTS)?;
        }
        if let Some(limit) = patch.monthly_limit_cents {
            next.monthly_limit_cents = limit
                .map(|l| {
                    between("auto_reload_monthly_limit_cents", l, MIN_MONTHLY_LIMIT_CENTS, MAX_MONTHLY_LIMIT_CENTS)
                })
                .transpose()?;
        }
        Ok(next)
    }
}

/// Auto-reload's declines in a row, and when it tries again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declines {
    pub count: u32,
    pub amount_cents: i64,
    pub code: String,
    pub message: String,
    pub at: Timestamp,
    /// `None`: stopped, after [`MAX_CONSECUTIVE_DECLINES`].
    pub next_retry_at: Option<Timestamp>,
}

/// A credit the provider funded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    pub amount_cents: i64,
    pub at: Timestamp,
    /// Auto-reload's, or a top-up asked for.
    pub automatic: bool,
}

/// Spend in one calendar month (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthSpend {
    /// `year * 12 + month0`: which month the sums are of.
    pub month: i64,
    pub usage_cents: i64,
    pub auto_reload_cents: i64,
}

/// The calendar month (UTC) of `at`, as [`MonthSpend::month`] numbers it.
pub fn month_of(at: Timestamp) -> i64 {
    let date = chrono::DateTime::from_timestamp_millis(at.0).unwrap_or_default();
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

fn day_of(at: Timestamp) -> i64 {
    at.0.div_euclid(DAY_MS)
}

/// What the ledger folds for funding and for the account the API shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funding {
    #[serde(default)]
    pub settings: AutoReloadSettings,
    /// Charges decided whose outcome is not recorded yet, by intent id.
    #[serde(default)]
    pub pending: BTreeMap<String, Charge>,
    #[serde(default)]
    pub declines: Option<Declines>,
    #[serde(default)]
    pub month: MonthSpend,
    /// Usage charged per day (days since the epoch), for the last week.
    #[serde(default)]
    pub daily_usage_cents: BTreeMap<i64, i64>,
    #[serde(default)]
    pub last_top_up: Option<Credit>,
    #[serde(default)]
    pub last_auto_reload: Option<Credit>,
    #[serde(default)]
    pub last_manual_topup_error: Option<String>,
    #[serde(default)]
    pub last_manual_topup_intent_id: Option<String>,
    /// The card of the last top-up that named one: auto-reload charges it.
    #[serde(default)]
    pub payment_method_id: Option<String>,
}

impl Funding {
    pub fn apply(&mut self, event: &LedgerEvent) {
        match event {
            LedgerEvent::AutoReloadSet { settings, .. } => {
                self.settings = settings.clone();
                // New settings start over: the customer changed what was declined.
                self.declines = None;
            }
            LedgerEvent::ChargeRequested { charge, .. } => {
                self.pending.insert(charge.intent_id.clone(), charge.clone());
            }
            LedgerEvent::ChargeSucceeded { charge, at, .. } => {
                self.pending.remove(&charge.intent_id);
                self.declines = None;
                let automatic = charge.purpose == ChargePurpose::AutoReload;
                let credit = Credit { amount_cents: charge.amount_cents, at: *at, automatic };
                self.last_top_up = Some(credit);
                if automatic {
                    self.last_auto_reload = Some(credit);
                    self.roll_month(*at);
                    self.month.auto_reload_cents += charge.amount_cents;
                } else {
                    self.last_manual_topup_intent_id = Some(charge.intent_id.clone());
                    self.last_manual_topup_error = None;
                    if charge.payment_method_id.is_some() {
                        self.payment_method_id = charge.payment_method_id.clone();
                    }
                }
            }
            LedgerEvent::ChargeDeclined { charge, code, message, at } => {
                self.pending.remove(&charge.intent_id);
                match charge.purpose {
                    ChargePurpose::AutoReload => {
                        let count = self.declines.as_ref().map_or(0, |d| d.count) + 1;
                        let next_retry_at = (count < MAX_CONSECUTIVE_DECLINES)
                            .then(|| Timestamp(at.0 + RETRY_AFTER_MS * i64::from(count)));
                        self.declines = Some(Declines {
                            count,
                            amount_cents: charge.amount_cents,
                            code: code.clone(),
                            message: message.clone(),
                            at: *at,
                            next_retry_at,
                        });
                    }
                    ChargePurpose::TopUp => {
                        self.last_manual_topup_intent_id = Some(charge.intent_id.clone());
                        self.last_manual_topup_error = Some(message.clone());
                    }
                }
            }
            LedgerEvent::ReservationSettled { charged_cents, at, .. } if *charged_cents > 0 => {
                self.roll_month(*at);
                self.month.usage_cents += charged_cents;
                let today = day_of(*at);
                *self.daily_usage_cents.entry(today).or_default() += charged_cents;
                self.daily_usage_cents.retain(|day, _| *day > today - SPEND_WINDOW_DAYS);
            }
            _ => {}
        }
    }

    /// Starts a new month's sums when `at` is in a later month than the ones kept.
    fn roll_month(&mut self, at: Timestamp) {
        let month = month_of(at);
        if month > self.month.month {
            self.month = MonthSpend { month, ..MonthSpend::default() };
        }
    }

    /// This month's spend as of `now`: nothing yet if the sums kept are of an earlier month.
    pub fn month_spend(&self, now: Timestamp) -> MonthSpend {
        let month = month_of(now);
        if self.month.month == month { self.month } else { MonthSpend { month, ..MonthSpend::default() } }
    }

    /// An auto-reload charge in flight, if any: one at a time.
    pub fn reload_in_flight(&self) -> bool {
        self.pending.values().any(|c| c.purpose == ChargePurpose::AutoReload)
    }

    /// Whether another reload would go past this month's cap.
    pub fn capped(&self, now: Timestamp) -> bool {
        self.settings
            .monthly_limit_cents
            .is_some_and(|limit| self.month_spend(now).auto_reload_cents + self.settings.amount_cents > limit)
    }

    pub fn status(&self, now: Timestamp) -> AutoReloadStatus {
        match &self.declines {
            _ if !self.settings.enabled => AutoReloadStatus::Off,
            Some(d) if d.next_retry_at.is_none() => AutoReloadStatus::Stopped,
            Some(_) => AutoReloadStatus::Retrying,
            None if self.capped(now) => AutoReloadStatus::Capped,
            None => AutoReloadStatus::Ok,
        }
    }

    /// When auto-reload will try again after a decline, if it will.
    pub fn next_retry_at(&self) -> Option<Timestamp> {
        if !self.settings.enabled {
            return None;
        }
        self.declines.as_ref().and_then(|d| d.next_retry_at)
    }

    /// Whether auto-reload charges now, given the balances: on, nothing in flight, not stopped
    /// nor waiting to retry, the available balance below the minimum, and the reload within
    /// this month's cap.
    pub fn reload_due(&self, balances: &Balances, now: Timestamp) -> bool {
        self.settings.enabled
            && !self.reload_in_flight()
            && self.declines.as_ref().is_none_or(|d| d.next_retry_at.is_some_and(|at| at <= now))
            && balances.available_cents() < self.settings.minimum_cents
            && !self.capped(now)
    }

    /// The auto-reload charge to record, under `intent_id`, if one is due.
    pub fn reload(&self, balances: &Balances, now: Timestamp, intent_id: impl FnOnce() -> String) -> Option<Charge> {
        self.reload_due(balances, now).then(|| Charge {
            intent_id: intent_id(),
            purpose: ChargePurpose::AutoReload,
            amount_cents: self.settings.amount_cents,
            payment_method_id: self.payment_method_id.clone(),
            reference: None,
        })
    }

    /// The average usage a day over the last week, if there was any.
    pub fn average_daily_spend_cents_7d(&self, now: Timestamp) -> Option<i64> {
        let today = day_of(now);
        let spent: i64 =
            self.daily_usage_cents.range(today - SPEND_WINDOW_DAYS + 1..=today).map(|(_, cents)| cents).sum();
        (spent > 0).then(|| (spent + SPEND_WINDOW_DAYS - 1) / SPEND_WINDOW_DAYS)
    }
}

/// Where auto-reload stands, as the contract names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoReloadStatus {
    Off,
    Ok,
    Capped,
    Retrying,
    Stopped,
}

impl AutoReloadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Ok => "ok",
            Self::Capped => "capped",
            Self::Retrying => "retrying",
            Self::Stopped => "stopped",
        }
    }
}

/// The org's billing account as `GET /v1/billing` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    pub balance_cents: i64,
    pub reserved_cents: i64,
    pub available_cents: i64,
    pub rate_cents_per_minute: u32,
    pub settings: AutoReloadSettings,
    pub status: AutoReloadStatus,
    pub reload_in_flight: bool,
    pub declines: Option<Declines>,
    pub month: MonthSpend,
    pub last_top_up: Option<Credit>,
    pub last_auto_reload: Option<Credit>,
    pub last_manual_topup_error: Option<String>,
    pub last_manual_topup_intent_id: Option<String>,
    /// A card is on file: a top-up has succeeded.
    pub has_payment_method: bool,
    pub average_daily_spend_cents_7d: Option<i64>,
    /// Days the balance lasts at that average.
    pub balance_runway_days: Option<i64>,
}

impl AccountView {
    pub fn of(balances: &Balances, rate_cents_per_minute: u32, funding: &Funding, now: Timestamp) -> Self {
        let average = funding.average_daily_spend_cents_7d(now);
        Self {
            balance_cents: balances.balance_cents(),
            reserved_cents: balances.reserved_cents(),
            available_cents: balances.available_cents(),
            rate_cents_per_minute,
            settings: funding.settings.clone(),
            status: funding.status(now),
            reload_in_flight: funding.reload_in_flight(),
            declines: funding.declines.clone().filter(|_| funding.settings.enabled),
            month: funding.month_spend(now),
            last_top_up: funding.last_top_up,
            last_auto_reload: funding.last_auto_reload,
            last_manual_topup_error: funding.last_manual_topup_error.clone(),
            last_manual_topup_intent_id: funding.last_manual_topup_intent_id.clone(),
            has_payment_method: funding.last_top_up.is_some(),
            average_daily_spend_cents_7d: average,
            balance_runway_days: average.map(|a| balances.balance_cents().max(0) / a),
        }
    }
}
