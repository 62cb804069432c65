//! An agent's runtime settings: what the agent runtime (speech, the LLM, the call's pacing) reads
//! from the agent a call runs with, beyond its prompt and voice. The engine validates and stores
//! them and hands them to the runtime with the call; it does not act on most of them itself.
//!
//! One table ([`AgentSettings`], made by `settings!`) names every setting once, with its type, its
//! default and where the API takes it. Each type is a value type that parses itself (its
//! `Deserialize` refuses what its rule refuses, so a stored or wired value is re-parsed on the
//! way in) and states its [`Shape`], from which the gateway checks a body's JSON types and
//! writes the OpenAPI schema. Nothing here knows JSON.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::E164;
use crate::fields::{check_length, refuse_invisible};

/// The kind of value a setting takes, as a request body carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Text {
        max_chars: usize,
    },
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// A list of bounded strings.
    Texts {
        max_items: usize,
        max_chars: usize,
    },
    /// A list of objects whose fields are all required strings.
    Records {
        max_items: usize,
        fields: &'static [&'static str],
    },
    /// Any JSON value, kept as its text within a size bound; its meaning is the runtime's.
    FreeForm {
        max_bytes: usize,
    },
}

/// What a setting accepts: its kind, and whether it may be null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub kind: Kind,
    pub nullable: bool,
}

impl Shape {
    pub const fn of(kind: Kind) -> Self {
        Self { kind, nullable: false }
    }

    pub const fn nullable(self) -> Self {
        Self { kind: self.kind, nullable: true }
    }
}

/// A setting's value type.
pub trait Setting: Clone + Serialize + DeserializeOwned {
    const SHAPE: Shape;
}

impl Setting for bool {
    const SHAPE: Shape = Shape::of(Kind::Bool);
}

impl<T: Setting> Setting for Option<T> {
    const SHAPE: Shape = T::SHAPE.nullable();
}

/// Where a setting is taken: an agent's body, a call's inline `config`, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    Both,
    /// Agents only: the inline config of the contract has no such field.
    Agent,
    /// Inline configs only.
    Inline,
}

/// Gives a setting's value, if the input has one; whoever reads the input records its errors.
pub trait SettingSource {
    fn take<T: Setting>(&mut self, field: &'static str, shape: Shape) -> Option<T>;
}

/// Deserializes a patch field that is present, so that a present null is `Some(None)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

macro_rules! settings {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty = $default:expr, $applies:ident $(, $shape:expr)? ; )*) => {
        /// Every runtime setting of an agent; each is already valid.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct AgentSettings {
            $( $(#[$doc])* pub $field: $ty, )*
        }

        impl Default for AgentSettings {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        /// A change to some settings: each `Some` replaces the agent's.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct AgentSettingsPatch {
            $(
                #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
                pub $field: Option<$ty>,
            )*
        }

        impl AgentSettingsPatch {
            /// A patch that sets every setting, as a full body does.
            pub fn replacing(s: AgentSettings) -> Self {
                Self { $( $field: Some(s.$field), )* }
            }

            pub fn apply(self, s: &AgentSettings) -> AgentSettings {
                AgentSettings { $( $field: self.$field.unwrap_or_else(|| s.$field.clone()), )* }
            }

            /// Reads the settings `source` has, asking for each with its shape.
            pub fn read(source: &mut impl SettingSource) -> Self {
                Self { $( $field: source.take(stringify!($field), settings!(@shape $ty $(, $shape)?)), )* }
            }
        }

        /// Every setting: its name, its shape (as agents take it) and where it applies.
        pub const SETTINGS: &[(&str, Shape, Applies)] =
            &[ $( (stringify!($field), settings!(@shape $ty $(, $shape)?), Applies::$applies), )* ];
    };
    (@shape $ty:ty) => { <$ty as Setting>::SHAPE };
    (@shape $ty:ty, $shape:expr) => { $shape };
}

/// An enum the API spells as strings; `VALUES` lists them in the contract's order.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $( $variant:ident = $text:literal ),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $( #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            pub const VALUES: &'static [&'static str] = &[ $( $text ),+ ];

            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text, )+ }
            }

            pub fn parse(raw: &str) -> Result<Self, String> {
                match raw {
                    $( $text => Ok(Self::$variant), )+
                    other => Err(format!("\"{other}\" is not a valid choice.")),
                }
            }
        }

        impl Setting for $name {
            const SHAPE: Shape = Shape::of(Kind::Choice(Self::VALUES));
        }
    };
}

choice!(
    /// What the agent does when a voicemail greeting answers.
    VoicemailAction { Hangup = "hangup", Message = "message", Prompt = "prompt" }
);
choice!(
    /// Who speaks first once the call connects.
    SpeakOrder { AgentFirst = "agent_first", CallerFirst = "caller_first" }
);
choice!(
    /// How hard the model thinks before it answers. Agents take `base` and `extra`; an inline
    /// config may also ask for `minimal`.
    ThinkingLevel { Base = "base", Extra = "extra", Minimal = "minimal" }
);
choice!(
    /// The runtime pipeline the agent runs on.
    Product {
        Bolt = "bolt",
        BoltBaseExperimental = "bolt-base-experimental",
        BoltExtraExperimental = "bolt-extra-experimental",
        Spark = "spark",
        StormBase = "storm-base",
        StormBaseWithAck = "storm-base-with-ack",
        StormExtra = "storm-extra",
        StormExtraWithAck = "storm-extra-with-ack",
    }
);
choice!(
    /// What the caller hears while the agent thinks. Agents take `acknowledgement` and `tick`;
    /// an inline config (`storm_feedback_mode`) may also say `none`.
    FeedbackMode { Acknowledgement = "acknowledgement", Tick = "tick", None = "none" }
);
choice!(
    /// Whether the acknowledgement prompt is written by hand or generated.
    PromptMode { Auto = "auto", Manual = "manual" }
);
choice!(
    /// How much recent caller audio the model hears.
    AudioContextMode { Full = "full", Reduced = "reduced" }
);
choice!(
    /// A sound the runtime can play on the agent's cue; `""` for none.
    SoundAsset { Blank = "", Beep = "beep", Chime = "chime", Ding = "ding" }
);
choice!(
    /// The inline config's runtime pipeline version.
    BoltPipeline { V1 = "v1", V2 = "v2" }
);
choice!(
    /// When data extraction holds up the end of a call.
    ExtractionBlocksCompletion { Always = "always", ExceptTransfers = "except_transfers", Never = "never" }
);
choice!(
    /// Whether calls of the agent may process protected health information.
    PhiProcessingOverride { Inherit = "inherit", NoPhi = "no_phi", Phi = "phi" }
);

/// The agent shapes of the two choices an inline config widens.
const AGENT_THINKING_LEVELS: Shape = Shape::of(Kind::Choice(&["base", "extra"]));
const AGENT_FEEDBACK_MODES: Shape = Shape::of(Kind::Choice(&["acknowledgement", "tick"]));

/// A whole number of something within `MIN..=MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Bounded<const MIN: i64, const MAX: i64>(i64);

impl<const MIN: i64, const MAX: i64> Bounded<MIN, MAX> {
    /// A value the table knows is in range (a default); out of range is a programmer error.
    pub const fn new(value: i64) -> Self {
        assert!(value >= MIN && value <= MAX);
        Self(value)
    }

    pub fn parse(raw: i64) -> Result<Self, String> {
        if raw < MIN {
            Err(format!("Ensure this value is greater than or equal to {MIN}."))
        } else if raw > MAX {
            Err(format!("Ensure this value is less than or equal to {MAX}."))
        } else {
            Ok(Self(raw))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl<const MIN: i64, const MAX: i64> TryFrom<i64> for Bounded<MIN, MAX> {
    type Error = String;
    fn try_from(raw: i64) -> Result<Self, String> {
        Self::parse(raw)
    }
}

impl<const MIN: i64, const MAX: i64> From<Bounded<MIN, MAX>> for i64 {
    fn from(b: Bounded<MIN, MAX>) -> i64 {
        b.0
    }
}

impl<const MIN: i64, const MAX: i64> Setting for Bounded<MIN, MAX> {
    const SHAPE: Shape = Shape::of(Kind::Int { min: MIN, max: MAX });
}

/// Seconds of caller silence before the agent hangs up.
pub type SilenceHangupSeconds = Bounded<1, 3600>;
/// Seconds between the agent's check-ins while the caller is silent.
pub type SilenceIntervalSeconds = Bounded<1, 600>;
/// How many times the agent checks in before it gives up on a silent caller.
pub type SilenceMaxCheckins = Bounded<0, 20>;
/// The longest a call may last (four hours).
pub type MaxCallDurationSeconds = Bounded<1, 14_400>;
/// How long an outbound or transfer leg rings before it is given up.
pub type RingDurationSeconds = Bounded<1, 300>;

/// Text of at most `MAX` characters, without control characters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_length(raw, MAX)?;
        // Prompts and templates may span lines; nothing else a person cannot see is taken.
        if raw.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
            return Err(crate::fields::CONTROL.to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl<const MAX: usize> From<Text<MAX>> for String {
    fn from(t: Text<MAX>) -> String {
        t.0
    }
}

impl<const MAX: usize> Setting for Text<MAX> {
    const SHAPE: Shape = Shape::of(Kind::Text { max_chars: MAX });
}

/// Short texts: a voicemail message, a consent announcement, an SMS template.
pub type Message = Text<2_000>;
/// A track or asset name, an email address, a sender number.
pub type Label = Text<255>;
/// Instructions for a report.
pub type Instructions = Text<10_000>;

pub const MAX_LANGUAGE_CHARS: usize = 16;
pub const MAX_ADDITIONAL_LANGUAGES: usize = 16;

/// A language tag as the runtime takes it: `en`, `es`, `pt-BR`, `zh-Hant-TW`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

impl Language {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = raw.split('-');
        let primary = parts.next().unwrap_or_default();
        let primary_ok = (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
        let rest_ok = parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if raw.len() <= MAX_LANGUAGE_CHARS && primary_ok && rest_ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("\"{raw}\" is not a valid language code (ISO 639, e.g. 'en', 'es', 'pt-BR')."))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Language {
    fn default() -> Self {
        Self("en".to_owned())
    }
}

impl TryFrom<String> for Language {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<Language> for String {
    fn from(l: Language) -> String {
        l.0
    }
}

impl Setting for Language {
    const SHAPE: Shape = Shape::of(Kind::Text { max_chars: MAX_LANGUAGE_CHARS });
}

/// The languages an agent may switch to besides its primary one, without repeats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Language>", into = "Vec<Language>")]
pub struct Languages(Vec<Language>);

impl Languages {
    pub fn as_slice(&self) -> &[Language] {
        &self.0
    }
}

impl TryFrom<Vec<Language>> for Languages {
    type Error = String;
    fn try_from(list: Vec<Language>) -> Result<Self, String> {
        if list.len() > MAX_ADDITIONAL_LANGUAGES {
            return Err(format!("Ensure this field has no more than {MAX_ADDITIONAL_LANGUAGES} elements."));
        }
        let mut seen: Vec<&str> = list.iter().map(Language::as_str).collect();
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0].eq_ignore_ascii_case(w[1])) {
            return Err("Each language may be listed once.".to_owned());
        }
        Ok(Self(list))
    }
}

impl From<Languages> for Vec<Language> {
    fn from(l: Languages) -> Self {
        l.0
    }
}

impl Setting for Languages {
    const SHAPE: Shape = Shape::of(Kind::Texts { max_items: MAX_ADDITIONAL_LANGUAGES, max_chars: MAX_LANGUAGE_CHARS });
}

pub const MAX_TIMEZONE_CHARS: usize = 64;

/// An IANA time zone name (`America/New_York`, `UTC`), or `""` for the org's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(String);

impl TimeZone {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = raw.len() <= MAX_TIMEZONE_CHARS
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
            && !raw.starts_with('/')
            && !raw.contains("//");
        if ok { Ok(Self(raw.to_owned())) } else { Err(format!("\"{raw}\" is not a valid time zone name.")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TimeZone {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<TimeZone> for String {
    fn from(t: TimeZone) -> String {
        t.0
    }
}

impl Setting for TimeZone {
    const SHAPE: Shape = Shape::of(Kind::Text { max_chars: MAX_TIMEZONE_CHARS });
}

pub const MAX_FREE_FORM_BYTES: usize = 16 * 1024;

/// A JSON value whose structure is the runtime's (steps, handoffs, business hours), kept as its
/// text. The gateway writes the text from a parsed value, so it is always JSON; here it is only
/// bounded. `null` when unset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FreeForm(String);

impl FreeForm {
    pub fn parse(json_text: &str) -> Result<Self, String> {
        if json_text.len() > MAX_FREE_FORM_BYTES {
            return Err(format!("Ensure this value is no larger than {MAX_FREE_FORM_BYTES} bytes as JSON."));
        }
        Ok(Self(json_text.to_owned()))
    }

    pub fn json_text(&self) -> &str {
        &self.0
    }
}

impl Default for FreeForm {
    fn default() -> Self {
        Self("null".to_owned())
    }
}

impl TryFrom<String> for FreeForm {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<FreeForm> for String {
    fn from(f: FreeForm) -> String {
        f.0
    }
}

impl Setting for FreeForm {
    const SHAPE: Shape = Shape::of(Kind::FreeForm { max_bytes: MAX_FREE_FORM_BYTES });
}

pub const MAX_TRANSFER_DESTINATIONS: usize = 32;
pub const MAX_DESTINATION_NAME_CHARS: usize = 100;

/// Where a transfer may go: a number, or one `{{variable}}` the call's variables fill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferNumber {
    Number(E164),
    Variable(String),
}

impl TransferNumber {
    /// A number in E.164 (ten digits without a country code are read as US), or exactly one
    /// `{{variable}}`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some(name) = raw.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
            let name = name.trim();
            let ok = !name.is_empty()
                && name.len() <= 64
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            return if ok {
                Ok(Self::Variable(name.to_owned()))
            } else {
                Err("A variable is written {{name}}: letters, digits and '_'.".to_owned())
            };
        }
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
        let candidate = if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
            format!("+1{digits}")
        } else {
            digits
        };
        E164::parse(&candidate).map(Self::Number)
    }

    pub fn as_string(&self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Variable(name) => format!("{{{{{name}}}}}"),
        }
    }
}

/// A transfer number: the name the prompt uses for it, and what it stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawDestination", into = "RawDestination")]
pub struct TransferDestination {
    pub name: String,
    pub number: TransferNumber,
}

#[derive(Serialize, Deserialize)]
struct RawDestination {
    name: String,
    number: String,
}

impl TryFrom<RawDestination> for TransferDestination {
    type Error = String;
    fn try_from(raw: RawDestination) -> Result<Self, String> {
        let name =
            crate::fields::required_name(&raw.name, MAX_DESTINATION_NAME_CHARS).map_err(|e| format!("name: {e}"))?;
        let number = TransferNumber::parse(&raw.number).map_err(|e| format!("number: {e}"))?;
        Ok(Self { name, number })
    }
}

impl From<TransferDestination> for RawDestination {
    fn from(d: TransferDestination) -> Self {
        Self { name: d.name, number: d.number.as_string() }
    }
}

/// An agent's transfer numbers, their names unique ignoring case.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<TransferDestination>", into = "Vec<TransferDestination>")]
pub struct TransferDestinations(Vec<TransferDestination>);

impl TransferDestinations {
    pub fn as_slice(&self) -> &[TransferDestination] {
        &self.0
    }
}

impl TryFrom<Vec<TransferDestination>> for TransferDestinations {
    type Error = String;
    fn try_from(list: Vec<TransferDestination>) -> Result<Self, String> {
        if list.len() > MAX_TRANSFER_DESTINATIONS {
            return Err(format!("Ensure this field has no more than {MAX_TRANSFER_DESTINATIONS} elements."));
        }
        let mut names: Vec<String> = list.iter().map(|d| d.name.to_lowercase()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err("Transfer destination names must be unique (ignoring case).".to_owned());
        }
        Ok(Self(list))
    }
}

impl From<TransferDestinations> for Vec<TransferDestination> {
    fn from(d: TransferDestinations) -> Self {
        d.0
    }
}

impl Setting for TransferDestinations {
    const SHAPE: Shape = Shape::of(Kind::Records { max_items: MAX_TRANSFER_DESTINATIONS, fields: &["name", "number"] });
}

pub const MAX_SMS_RECIPIENTS: usize = 32;

/// A number the agent's SMS tool may text, and how the prompt names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRecipient", into = "RawRecipient")]
pub struct SmsRecipient {
    pub label: String,
    pub number: E164,
}

#[derive(Serialize, Deserialize)]
struct RawRecipient {
    label: String,
    number: String,
}

impl TryFrom<RawRecipient> for SmsRecipient {
    type Error = String;
    fn try_from(raw: RawRecipient) -> Result<Self, String> {
        check_length(&raw.label, MAX_DESTINATION_NAME_CHARS).map_err(|e| format!("label: {e}"))?;
        refuse_invisible(&raw.label).map_err(|e| format!("label: {e}"))?;
        let number = E164::parse(&raw.number).map_err(|e| format!("number: {e}"))?;
        Ok(Self { label: raw.label, number })
    }
}

impl From<SmsRecipient> for RawRecipient {
    fn from(r: SmsRecipient) -> Self {
        Self { label: r.label, number: r.number.to_string() }
    }
}

/// The numbers the SMS tool may text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<SmsRecipient>", into = "Vec<SmsRecipient>")]
pub struct SmsRecipients(Vec<SmsRecipient>);

impl TryFrom<Vec<SmsRecipient>> for SmsRecipients {
    type Error = String;
    fn try_from(list: Vec<SmsRecipient>) -> Result<Self, String> {
        if list.len() > MAX_SMS_RECIPIENTS {
            return Err(format!("Ensure this field has no more than {MAX_SMS_RECIPIENTS} elements."));
        }
        Ok(Self(list))
    }
}

impl From<SmsRecipients> for Vec<SmsRecipient> {
    fn from(r: SmsRecipients) -> Self {
        r.0
    }
}

impl Setting for SmsRecipients {
    const SHAPE: Shape = Shape::of(Kind::Records { max_items: MAX_SMS_RECIPIENTS, fields: &["label", "number"] });
}

settings! {
    // What the runtime does with the call.
    /// What the agent does when a voicemail greeting answers.
    voicemail_action: VoicemailAction = VoicemailAction::Prompt, Both;
    /// The voicemail left when `voicemail_action` is `message` ({agent_name}, {org_name}).
    voicemail_message: Message = Message::default(), Both;
    /// Whether the agent checks in on, and eventually hangs up on, a silent caller.
    silence_checkins_enabled: bool = true, Both;
    silence_hangup_seconds: SilenceHangupSeconds = Bounded::new(30), Both;
    silence_interval_seconds: SilenceIntervalSeconds = Bounded::new(10), Both;
    silence_max_checkins: SilenceMaxCheckins = Bounded::new(2), Both;
    inbound_speak_order: SpeakOrder = SpeakOrder::AgentFirst, Agent;
    outbound_speak_order: SpeakOrder = SpeakOrder::CallerFirst, Agent;
    /// The numbers the agent may transfer to; with none it cannot transfer.
    transfer_destinations: TransferDestinations = TransferDestinations::default(), Both;
    primary_language: Language = Language::default(), Both;
    additional_languages: Languages = Languages::default(), Both;
    /// `""` for the org's time zone.
    timezone: TimeZone = TimeZone::default(), Agent;
    /// `None`: no limit beyond the engine's.
    max_call_duration_seconds: Option<MaxCallDurationSeconds> = None, Both;
    /// `None`: the platform's ring time.
    ring_duration_seconds: Option<RingDurationSeconds> = None, Both;
    background_track: Option<Label> = None, Both;
    thinking_level: ThinkingLevel = ThinkingLevel::Base, Both, AGENT_THINKING_LEVELS;
    product: Product = Product::Spark, Both;
    acknowledgement_feedback_mode: FeedbackMode = FeedbackMode::Acknowledgement, Both, AGENT_FEEDBACK_MODES;
    acknowledgement_prompt: Message = Message::default(), Both;
    acknowledgement_prompt_mode: PromptMode = PromptMode::Auto, Both;
    audio_context_mode: AudioContextMode = AudioContextMode::Full, Both;
    /// `None`: the depth that follows from the call's direction.
    additional_audio_context: Option<bool> = None, Both;
    consent_announcement_enabled: bool = false, Both;
    consent_announcement_text: Message = Message::default(), Both;
    connect_tone_enabled: bool = false, Both;
    typing_sounds_enabled: bool = false, Both;
    speak_uninterruptible_enabled: bool = false, Both;
    native_voice_switching: bool = false, Both;
    watchdog_enabled: bool = false, Both;
    play_sound_asset: SoundAsset = SoundAsset::Blank, Both;
    steps: FreeForm = FreeForm::default(), Agent;
    handoffs: FreeForm = FreeForm::default(), Agent;
    business_hours: FreeForm = FreeForm::default(), Agent;
    bolt_pipeline: BoltPipeline = BoltPipeline::V1, Inline;

    // Features outside this engine, stored so that they read back as written; the runtime gets
    // them with the rest and may ignore them.
    call_summary_enabled: bool = false, Agent;
    report_instructions: Instructions = Instructions::default(), Agent;
    extraction_fields: FreeForm = FreeForm::default(), Agent;
    extraction_blocks_completion: ExtractionBlocksCompletion = ExtractionBlocksCompletion::Never, Agent;
    outcome_labels: FreeForm = FreeForm::default(), Agent;
    phi_processing_override: PhiProcessingOverride = PhiProcessingOverride::Inherit, Agent;
    send_email_enabled: bool = false, Both;
    send_email_recipient: Label = Label::default(), Both;
    send_sms_enabled: bool = false, Agent;
    sms_allow_other_recipients: bool = false, Agent;
    sms_allowed_recipients: SmsRecipients = SmsRecipients::default(), Agent;
    sms_followup_enabled: bool = false, Agent;
    sms_followup_template: Message = Message::default(), Agent;
    sms_from_number: Label = Label::default(), Agent;
    split_testing_enabled: bool = false, Agent;
    widget_enabled: bool = false, Agent;
}

/// The shape of a setting as an agent body takes it.
pub fn shape_of(field: &str) -> Option<(Shape, Applies)> {
    SETTINGS.iter().find(|(name, ..)| *name == field).map(|&(_, shape, applies)| (shape, applies))
}
