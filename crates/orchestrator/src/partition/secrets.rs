//! The secrets of an org's VoIP connections inside the partition actor: a SIP password is
//! sealed before the command that records it is decided, opened only when a trunk is handed to
//! the carrier (verify, dial, resume), and shredded once the connection's deletion is durable.

use domain::ids::{OrgId, VoipConnectionId};
use domain::org::OrgCommand;
use domain::secret::Sealed;
use domain::voip::{EvidenceClaim, Provider, Vendor};
use wire::pb::{Failure, FailureKind};

use super::effects::Effect;
use super::{Decided, Outcome, Partition, load_org};

impl Partition {
    /// Creates a connection on the evidence of its test, its password sealed under a data key
    /// of its own. The configuration's fingerprint is what the domain matches the evidence by.
    pub(super) fn create_connection(
        &mut self,
        org: OrgId,
        name: String,
        vendor: Vendor,
        provider: Provider,
        evidence_id: String,
    ) -> Outcome {
        let evidence = EvidenceClaim { id: evidence_id, fingerprint: self.vault.config_fingerprint(vendor, &provider) };
        let provider = provider.try_map_password(|p| self.vault.seal(&p)).map_err(vault_failure)?;
        let sealed = provider.password().cloned();
        let outcome = self.decide_org(org, OrgCommand::CreateVoipConnection { name, vendor, provider, evidence });
        if outcome.is_err()
            && let Some(sealed) = sealed
        {
            self.vault.discard(&sealed);
        }
        outcome
    }

    /// Renames a connection, or changes its configuration on the evidence of its test. The
    /// password it replaces stays sealed in the events that held it; its data key is kept, since
    /// calls placed before may still need it to end.
    pub(super) fn update_connection(
        &mut self,
        org: OrgId,
        id: VoipConnectionId,
        name: Option<String>,
        trunk: Option<(Provider, String)>,
    ) -> Outcome {
        let vendor = load_org(&self.log, &mut self.orgs, org)?
            .state
            .connections
            .get(&id)
            .map(|c| c.vendor)
            .ok_or_else(|| wire::not_found(domain::org::Resource::VoipConnection))?;
        let trunk = match trunk {
            None => None,
            Some((provider, evidence_id)) => {
                let fingerprint = self.vault.config_fingerprint(vendor, &provider);
                let provider = provider.try_map_password(|p| self.vault.seal(&p)).map_err(vault_failure)?;
                Some((provider, EvidenceClaim { id: evidence_id, fingerprint }))
            }
        };
        let sealed = trunk.as_ref().and_then(|(p, _)| p.password().cloned());
        let outcome = self.decide_org(org, OrgCommand::UpdateVoipConnection { id, name, trunk });
        if outcome.is_err()
            && let Some(sealed) = sealed
        {
            self.vault.discard(&sealed);
        }
        outcome
    }

    /// Deletes a connection, and once its deletion is durable, its password's data key: from
    /// then on no copy of the password (the events keep its ciphertext for good) can be opened.
    /// The answer waits for both.
    pub(super) fn delete_connection(&mut self, org: OrgId, id: VoipConnectionId, request: bus::Message) {
        let sealed = match load_org(&self.log, &mut self.orgs, org) {
            Ok(folded) => folded.state.connections.get(&id).and_then(|c| c.provider.password().cloned()),
            Err(failure) => return self.answer(request, Err(failure)),
        };
        let Decided { pending, reply } = match self.decide_org(org, OrgCommand::DeleteVoipConnection { id }) {
            Ok(decided) => decided,
            Err(failure) => return self.answer(request, Err(failure)),
        };
        self.perform(Effect::Shred { sealed, request, reply, after: pending });
    }

    /// A provider with its password opened, for the carrier. `Err` says why it cannot be.
    pub(super) fn open_provider(&self, provider: &Provider<Sealed>) -> Result<Provider, String> {
        provider
            .clone()
            .try_map_password(|sealed| self.vault.open(&sealed))
            .map_err(|e| format!("The connection's password cannot be used: {e}."))
    }
}

pub(super) fn vault_failure(error: crate::vault::Error) -> Failure {
    tracing::error!(%error, "vault failure");
    Failure::new(FailureKind::Unavailable, "storage_unavailable", "The secret store is unavailable; retry later.")
}
