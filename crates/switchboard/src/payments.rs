//! Which payment provider billing charges top-ups and auto-reload through.

use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Clone, Debug)]
pub struct PaymentArgs {
    /// `sim`: the simulated provider (deterministic; `pm_sim_decline` and amounts ending in 02
    /// cents are declined, see `billing::payments`). `none`: every charge is declined, and
    /// only the admin adds funds.
    #[arg(long, env = "SWITCHBOARD_PAYMENT_PROVIDER", default_value = "sim", value_parser = ["sim", "none"])]
    pub payment_provider: String,
    /// How long one charge may take at the provider before billing takes its outcome as
    /// unknown and asks again later (under the same idempotency key).
    #[arg(long, default_value_t = 5_000)]
    pub payment_timeout_ms: u64,
}

impl PaymentArgs {
    pub fn payments(&self) -> billing::Payments {
        let provider: billing::payments::SharedPayments = match self.payment_provider.as_str() {
            "none" => Arc::new(billing::payments::NoProvider),
            _ => Arc::new(billing::payments::SimulatedProvider::new()),
        };
        billing::Payments { provider, charge_timeout: Duration::from_millis(self.payment_timeout_ms) }
    }
}
