//! What an admin token must be for a cluster, where the admin API can credit money: long, not a
//! placeholder, not a short word repeated. (`dev` makes its own strong token; one set by hand
//! there is the developer's business.)

/// The shortest token a cluster takes: 32 characters, what `openssl rand -hex 16` prints
/// (128 bits when random), and well under the 41 of the tokens `dev` makes.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// A token must use at least this many different characters, so that a short word repeated
/// (`changemechangeme...`) is refused however long it is made.
const MIN_DISTINCT_CHARS: usize = 10;

/// Placeholders found in examples and default configurations, compared without case and with
/// `-`, `_` and spaces removed. Most are shorter than the minimum anyway; they are named so that
/// the refusal says what is wrong.
const WELL_KNOWN: &[&str] = &[
    "changeme",
    "admin",
    "password",
    "secret",
    "token",
    "test",
    "default",
    "letmein",
    "12345678",
    "adminadmin",
    "admintoken",
    "secrettoken",
    "yourtokenhere",
    "youradmintokenhere",
    "replacewitharandomtoken",
    "replacemewithalongrandomtoken",
    "pleasechangeme",
    "changemeplease",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WeakAdminToken {
    #[error("the admin token is empty")]
    Empty,
    #[error("the admin token is a well-known placeholder")]
    WellKnown,
    #[error("the admin token is {0} characters long; it must be at least {MIN_ADMIN_TOKEN_CHARS}")]
    TooShort(usize),
    #[error("the admin token uses only {0} different characters; it must use at least {MIN_DISTINCT_CHARS}")]
    TooRepetitive(usize),
}

/// Refuses a token anyone could guess. The error never repeats the token.
pub fn check_admin_token(token: &str) -> Result<(), WeakAdminToken> {
    let token = token.trim();
    if token.is_empty() {
        return Err(WeakAdminToken::Empty);
    }
    let folded: String = token.chars().filter(|c| !matches!(c, '-' | '_' | ' ')).flat_map(char::to_lowercase).collect();
    if WELL_KNOWN.contains(&folded.as_str()) {
        return Err(WeakAdminToken::WellKnown);
    }
    let chars = token.chars().count();
    if chars < MIN_ADMIN_TOKEN_CHARS {
        return Err(WeakAdminToken::TooShort(chars));
    }
    let distinct = token.chars().collect::<std::collections::BTreeSet<_>>().len();
    if distinct < MIN_DISTINCT_CHARS {
        return Err(WeakAdminToken::TooRepetitive(distinct));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{WeakAdminToken, check_admin_token};

    #[test]
    fn a_cluster_refuses_empty_placeholder_short_and_repetitive_tokens() {
        assert_eq!(check_admin_token(""), Err(WeakAdminToken::Empty));
        assert_eq!(check_admin_token("   "), Err(WeakAdminToken::Empty));
        for placeholder in ["change-me", "changeme", "CHANGE_ME", "admin", "password", "secret", "token", "test"] {
            assert_eq!(check_admin_token(placeholder), Err(WeakAdminToken::WellKnown), "{placeholder}");
        }
        assert_eq!(check_admin_token("replace-me-with-a-long-random-token"), Err(WeakAdminToken::WellKnown));
        assert_eq!(check_admin_token("sb_admin_test_token"), Err(WeakAdminToken::TooShort(19)));
        assert_eq!(check_admin_token(&"change-me".repeat(5)), Err(WeakAdminToken::TooRepetitive(8)));
        assert_eq!(check_admin_token(&"a".repeat(64)), Err(WeakAdminToken::TooRepetitive(1)));
    }

    #[test]
    fn a_random_token_is_taken_and_never_shown_in_the_refusal() {
        assert_eq!(check_admin_token("3f9c1a7e5b2d48f09e6c3b1a7d5e2f40"), Ok(()));
        assert_eq!(check_admin_token("sb_admin_Q8fJ2kLm9XwPz4RtY7vBn3CdE6gH1sA0"), Ok(()));
        let refused = check_admin_token("hunter2hunter2").unwrap_err().to_string();
        assert!(!refused.contains("hunter2"), "{refused}");
    }
}
