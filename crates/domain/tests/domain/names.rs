//! Names and SIP fields as they are parsed at the edge.

use domain::fields::{INVISIBLE, refuse_invisible};
use domain::voip::{SipTrunk, parse_connection_name};

/// What a name must never hide: controls, bidi overrides and isolates, zero-width
/// characters, the soft hyphen and the byte order mark.
const HIDDEN: &[char] = &[
    '\0', '\n', '\r', '\t', '\u{7f}', '\u{9b}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}',
    '\u{2067}', '\u{2068}', '\u{2069}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}', '\u{ad}',
    '\u{61c}',
];

#[test]
fn every_name_parser_refuses_control_and_format_characters() {
    let parsers: &[(&str, fn(&str) -> Result<String, String>)] = &[
        ("org or key", domain::org::parse_name),
        ("agent", domain::agent::AgentSpec::parse_name),
        ("voip connection", parse_connection_name),
        ("test batch", domain::test_call::parse_batch_name),
    ];
    for (what, parse) in parsers {
        for c in HIDDEN {
            let raw = format!("Acme{c}Corp");
            assert_eq!(parse(&raw), Err(INVISIBLE.to_owned()), "{what} name with U+{:04X}", *c as u32);
        }
        // Letters of every script, accents, emoji and spaces are names.
        for fine in ["Acme Corp", "Café Zürich", "東京 営業部", "שלום", "Support 🤖"] {
            assert_eq!(parse(fine).as_deref(), Ok(fine), "{what}");
        }
    }
}

#[test]
fn a_joiner_inside_an_emoji_sequence_is_refused_too() {
    // ZWJ sequences are the one legitimate use of U+200D in names; refusing them is the
    // price of a rule that a reviewer can hold in one line.
    assert!(refuse_invisible("family 👨\u{200d}👩").is_err());
}

#[test]
fn sip_credentials_and_hosts_refuse_control_characters() {
    let injection = "bob\r\nX-Injected: 1\r\n\r\nSET pwned 1";
    assert_eq!(SipTrunk::parse_credential(injection), Err(domain::fields::CONTROL.to_owned()));
    assert!(SipTrunk::parse_credential("pass\0word").is_err());
    assert!(SipTrunk::parse_host("sip.example.com\r\nX: 1").is_err());
    assert_eq!(SipTrunk::parse_credential("p@ss wörd!").as_deref(), Ok("p@ss wörd!"));
}

#[test]
fn the_hidden_ranges_are_exactly_what_names_refuse() {
    use domain::fields::{hidden_ranges, is_hidden};
    let ranges = hidden_ranges();
    assert_eq!(ranges.first(), Some(&('\u{0}'..='\u{1f}')));
    for c in ['\u{7f}', '\u{9b}', '\u{ad}', '\u{200b}', '\u{202e}', '\u{feff}', '\u{e0001}'] {
        assert!(ranges.iter().any(|r| r.contains(&c)), "{c:?} is hidden");
    }
    for c in ['a', ' ', 'é', '👨', '\u{a0}'] {
        assert!(!ranges.iter().any(|r| r.contains(&c)), "{c:?} is visible");
    }
    // Ranges are disjoint, ordered and not adjacent, and every character in them is hidden.
    for pair in ranges.windows(2) {
        assert!((*pair[0].end() as u32) + 1 < *pair[1].start() as u32, "{pair:?}");
    }
    assert!(ranges.iter().all(|r| r.clone().all(is_hidden)));
}
