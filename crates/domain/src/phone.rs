use serde::{Deserialize, Serialize};

/// A phone number in E.164: `+`, a country code that does not start with 0, 15 digits at most.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let digits = raw.strip_prefix('+').unwrap_or("");
        let valid =
            (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err("Enter a valid phone number in E.164 format, e.g. +14155550100.".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for E164 {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<E164> for String {
    fn from(n: E164) -> String {
        n.0
    }
}

impl std::fmt::Display for E164 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_and_rejects_the_rest() {
        for good in ["+14155550100", "+442071838750", "+4930123456"] {
            assert!(E164::parse(good).is_ok(), "{good}");
        }
        for bad in ["14155550100", "+0155550100", "+1415555010a", "+1", "", "+1234567890123456", "+1 415 555 0100"] {
            assert!(E164::parse(bad).is_err(), "{bad}");
        }
    }
}
