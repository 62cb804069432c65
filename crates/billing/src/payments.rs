//! The payment-provider seam: what billing asks of the card network, as `telephony::Carrier` is
//! what the orchestrator asks of the telephone network. Billing calls it only for a charge it
//! has recorded and made durable, with the charge's intent id as the provider's idempotency key,
//! so a charge performed again (after a crash, a timeout) is one charge at the provider.
//!
//! [`SimulatedProvider`] is the provider of `dev` and of tests: deterministic, and told what to
//! do by the charge itself, as Stripe's test cards are:
//!
//! | payment method / amount          | outcome                                            |
//! |----------------------------------|----------------------------------------------------|
//! | `pm_sim_decline`                 | declined, `card_declined`                          |
//! | `pm_sim_insufficient_funds`      | declined, `insufficient_funds`                     |
//! | `pm_sim_unreachable`             | no answer (billing tries again later)              |
//! | an amount ending in 02 cents     | declined, `card_declined` (e.g. 1002 = $10.02)     |
//! | anything else                    | succeeded                                          |
//!
//! A charge without a payment method uses the org's card on file, which the simulated provider
//! always has. [`NoProvider`] declines every charge (`--payment-provider none`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use domain::funding::{ChargeOutcome, ChargePurpose};
use domain::ids::OrgId;

/// One charge, as billing asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRequest {
    pub org: OrgId,
    /// The provider's idempotency key: the same intent is one charge, however often asked.
    pub intent_id: String,
    pub amount_cents: i64,
    pub payment_method_id: Option<String>,
    pub purpose: ChargePurpose,
}

/// The provider could not be asked, or did not answer: the charge's outcome is unknown, and
/// billing asks again later under the same intent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("payment provider unavailable: {0}")]
pub struct Unavailable(pub String);

#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Charges the org's card. A decline is an outcome; only a charge whose outcome is unknown
    /// is an error.
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, Unavailable>;
}

pub type SharedPayments = Arc<dyn PaymentProvider>;

/// The deterministic provider of `dev` and tests (see the module's table).
#[derive(Debug, Default)]
pub struct SimulatedProvider {
    /// Every intent charged and its outcome: a repeat answers the first outcome and charges
    /// nothing, as a provider's idempotency keys do. Grows with the charges of the process,
    /// which a simulation's are few.
    charged: Mutex<BTreeMap<String, ChargeOutcome>>,
}

pub const SIM_DECLINE: &str = "pm_sim_decline";
pub const SIM_INSUFFICIENT_FUNDS: &str = "pm_sim_insufficient_funds";
pub const SIM_UNREACHABLE: &str = "pm_sim_unreachable";

impl SimulatedProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct charges were made (succeeded or declined).
    pub fn charges(&self) -> usize {
        self.charged.lock().expect("not poisoned").len()
    }

    fn decide(request: &ChargeRequest) -> Result<ChargeOutcome, Unavailable> {
        let declined =
            |code: &str, message: &str| ChargeOutcome::Declined { code: code.into(), message: message.into() };
        Ok(match request.payment_method_id.as_deref() {
            Some(SIM_UNREACHABLE) => return Err(Unavailable("the simulated provider does not answer".into())),
            Some(SIM_DECLINE) => declined("card_declined", "Your card was declined."),
            Some(SIM_INSUFFICIENT_FUNDS) => declined("insufficient_funds", "Your card has insufficient funds."),
            _ if request.amount_cents % 100 == 2 => declined("card_declined", "Your card was declined."),
            _ => ChargeOutcome::Succeeded { provider_reference: format!("ch_sim_{}", request.intent_id) },
        })
    }
}

#[async_trait::async_trait]
impl PaymentProvider for SimulatedProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, Unavailable> {
        if let Some(outcome) = self.charged.lock().expect("not poisoned").get(&request.intent_id) {
            return Ok(outcome.clone());
        }
        let outcome = Self::decide(request)?;
        self.charged.lock().expect("not poisoned").entry(request.intent_id.clone()).or_insert(outcome.clone());
        Ok(outcome)
    }
}

/// No payment provider: every charge is declined, saying so.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProvider;

#[async_trait::async_trait]
impl PaymentProvider for NoProvider {
    async fn charge(&self, _: &ChargeRequest) -> Result<ChargeOutcome, Unavailable> {
        Ok(ChargeOutcome::Declined {
            code: "payment_provider_unavailable".into(),
            message: "This switchboard has no payment provider; ask the operator to add funds.".into(),
        })
    }
}
