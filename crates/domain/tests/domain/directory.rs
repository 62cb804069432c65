//! The directory of orgs and phone numbers.

use domain::directory::{self, Claim, DirectoryCommand, DirectoryError, DirectoryEvent, DirectoryState};
use domain::ids::{IdSequence, OrgId};
use domain::{Ctx, E164, Partitioning};

use crate::common::{EARLIER, NOW};

fn directory_given(events: &[DirectoryEvent]) -> DirectoryState {
    let mut state = DirectoryState::default();
    for e in events {
        state.apply(e);
    }
    state
}

fn directory_when(state: &DirectoryState, command: DirectoryCommand) -> Result<Vec<DirectoryEvent>, DirectoryError> {
    let mut ids = IdSequence::resume(Partitioning::new(64), 0, 0);
    directory::decide(state, command, &Ctx { now: NOW, ids: &mut ids })
}

#[test]
fn the_directory_numbers_orgs_one_after_another() {
    let first = directory_when(&directory_given(&[]), DirectoryCommand::RegisterOrg { name: "a".into() }).unwrap();
    let second = directory_when(&directory_given(&first), DirectoryCommand::RegisterOrg { name: "b".into() }).unwrap();
    assert!(matches!(second[0], DirectoryEvent::OrgRegistered { org_id: OrgId(2), .. }));
}

#[test]
fn a_number_belongs_to_one_org_and_claims_are_idempotent() {
    let n = E164::parse("+14155550100").unwrap();
    let claimed = vec![DirectoryEvent::NumberClaimed { number: n.clone(), org_id: OrgId(1), token: 7, at: EARLIER }];
    let state = directory_given(&claimed);
    let claim = |org, token| DirectoryCommand::ClaimNumber { org_id: OrgId(org), number: n.clone(), token };
    let release = |org, token| DirectoryCommand::ReleaseNumber { org_id: OrgId(org), number: Some(n.clone()), token };
    assert_eq!(directory_when(&state, claim(1, 7)), Ok(vec![]));
    assert_eq!(directory_when(&state, claim(2, 9)), Err(DirectoryError::NumberTaken(n.clone())));
    // Only the holder can release it, and only the claim it names.
    assert_eq!(directory_when(&state, release(2, 7)), Ok(vec![]));
    assert_eq!(directory_when(&state, release(1, 8)), Ok(vec![]));
    let released = directory_when(&state, release(1, 7)).unwrap();
    let after = directory_given(&[claimed, released].concat());
    assert!(directory_when(&after, claim(2, 9)).is_ok());
}

/// The race the tokens close: a claim the org gave up on (its record failed) is released late,
/// after the org claimed the number again for a phone number it records. The late release
/// names the old claim and changes nothing, so the recorded number keeps its claim.
#[test]
fn a_late_release_cannot_undo_a_later_claim_of_the_same_number() {
    let n = E164::parse("+14155550100").unwrap();
    let first = vec![DirectoryEvent::NumberClaimed { number: n.clone(), org_id: OrgId(1), token: 7, at: EARLIER }];
    let again = directory_when(
        &directory_given(&first),
        DirectoryCommand::ClaimNumber { org_id: OrgId(1), number: n.clone(), token: 8 },
    )
    .unwrap();
    assert_eq!(again, vec![DirectoryEvent::NumberClaimed { number: n.clone(), org_id: OrgId(1), token: 8, at: NOW }]);
    let state = directory_given(&[first, again].concat());
    let late = DirectoryCommand::ReleaseNumber { org_id: OrgId(1), number: Some(n.clone()), token: 7 };
    assert_eq!(directory_when(&state, late), Ok(vec![]));
    assert_eq!(
        directory_when(&state, DirectoryCommand::ClaimNumber { org_id: OrgId(2), number: n.clone(), token: 1 }),
        Err(DirectoryError::NumberTaken(n))
    );
}

#[test]
fn a_claim_recorded_before_tokens_is_released_by_its_org() {
    let n = E164::parse("+14155550100").unwrap();
    let legacy = vec![DirectoryEvent::NumberClaimed { number: n.clone(), org_id: OrgId(1), token: 0, at: EARLIER }];
    let released = directory_when(
        &directory_given(&legacy),
        DirectoryCommand::ReleaseNumber { org_id: OrgId(1), number: Some(n), token: 5 },
    );
    assert!(matches!(released.as_deref(), Ok([DirectoryEvent::NumberReleased { .. }])), "{released:?}");
}

#[test]
fn demo_numbers_come_from_the_pool_and_cannot_be_claimed_by_hand() {
    let demo = |org, token| DirectoryCommand::ClaimDemoNumber { org_id: OrgId(org), token };
    let first = directory_when(&directory_given(&[]), demo(1, 3)).unwrap();
    let second = directory_when(&directory_given(&first), demo(2, 4)).unwrap();
    let numbers: Vec<_> = [&first[0], &second[0]]
        .iter()
        .map(|e| match e {
            DirectoryEvent::NumberClaimed { number, .. } => number.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(numbers, vec!["+15005550000", "+15005550001"]);
    // A retry of a claim takes nothing more.
    let state = directory_given(&[first, second].concat());
    assert_eq!(directory_when(&state, demo(1, 3)), Ok(vec![]));
    assert_eq!(
        state.claimed_as(Claim { org_id: OrgId(1), token: 3 }).map(E164::to_string),
        Some("+15005550000".into())
    );
    // A claim whose answer was lost is released by its token alone: the pool gets it back.
    let release = DirectoryCommand::ReleaseNumber { org_id: OrgId(1), number: None, token: 3 };
    let released = directory_when(&state, release).unwrap();
    assert!(
        matches!(released.as_slice(), [DirectoryEvent::NumberReleased { number, token: 3, .. }] if number.as_str() == "+15005550000"),
        "{released:?}"
    );
    let unknown = DirectoryCommand::ReleaseNumber { org_id: OrgId(1), number: None, token: 99 };
    assert_eq!(directory_when(&state, unknown), Ok(vec![]));
    let err = directory_when(
        &directory_given(&[]),
        DirectoryCommand::ClaimNumber { org_id: OrgId(1), number: E164::parse("+15005550042").unwrap(), token: 1 },
    );
    assert!(matches!(err, Err(DirectoryError::ReservedForDemo(_))));
}
