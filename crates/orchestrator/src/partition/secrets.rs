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

    /// Renames a connection, or changes its configuration on the evidence of its test. A new
    /// password is sealed under a data key of its own; once the change is durable, the data key
    /// of the password it replaces is shredded (a call under way holds its trunk opened already),
    /// and the answer waits for that.
    pub(super) fn update_connection(
        &mut self,
        org: OrgId,
        id: VoipConnectionId,
        name: Option<String>,
        trunk: Option<(Provider, String)>,
        request: bus::Message,
    ) {
        let (vendor, replaced) = match load_org(&self.log, &mut self.orgs, org) {
            Ok(folded) => match folded.state.connections.get(&id) {
                Some(c) => (c.vendor, c.provider.password().cloned()),
                None => return self.answer(request, Err(wire::not_found(domain::org::Resource::VoipConnection))),
            },
            Err(failure) => return self.answer(request, Err(failure)),
        };
        let trunk = match trunk {
            None => None,
            Some((provider, evidence_id)) => {
                let fingerprint = self.vault.config_fingerprint(vendor, &provider);
                match provider.try_map_password(|p| self.vault.seal(&p)) {
                    Ok(provider) => Some((provider, EvidenceClaim { id: evidence_id, fingerprint })),
                    Err(e) => return self.answer(request, Err(vault_failure(e))),
                }
            }
        };
        let reconfigured = trunk.is_some();
        let sealed = trunk.as_ref().and_then(|(p, _)| p.password().cloned());
        match self.decide_org(org, OrgCommand::UpdateVoipConnection { id, name, trunk }) {
            Ok(Decided { pending, reply }) if reconfigured && replaced.is_some() => {
                self.perform(Effect::Shred { sealed: replaced, request, reply, after: pending });
            }
            Ok(decided) => self.answer(request, Ok(decided)),
            Err(failure) => {
                if let Some(sealed) = sealed {
                    self.vault.discard(&sealed);
                }
                self.answer(request, Err(failure));
            }
        }
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
