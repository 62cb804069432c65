//! An agent: the prompt, voice, tools and runtime settings a call runs with.

pub mod settings;

use serde::{Deserialize, Serialize};

pub use self::settings::{AgentSettings, AgentSettingsPatch};
use crate::Timestamp;
use crate::fields::check_length;

/// The voices the media runtime can speak with. Documented in the README.
pub const VOICES: &[&str] =
    &["alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"];

pub const DEFAULT_VOICE: &str = "alloy";
pub const DEFAULT_MAX_HOLD_SECONDS: u32 = 60;
pub const MAX_HOLD_SECONDS_LIMIT: u32 = 3600;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_PROMPT_CHARS: usize = 20_000;
pub const MAX_GREETING_CHARS: usize = 1_000;
pub const MAX_TOOLS: usize = 32;
pub const MAX_TOOL_DESCRIPTION_CHARS: usize = 1_000;
pub const MAX_URL_CHARS: usize = 2_048;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Voice(String);

impl Voice {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if VOICES.contains(&raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("\"{raw}\" is not a supported voice id."))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Voice {
    fn default() -> Self {
        Self(DEFAULT_VOICE.to_owned())
    }
}

impl TryFrom<String> for Voice {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<Voice> for String {
    fn from(v: Voice) -> String {
        v.0
    }
}

/// A function the agent may call during a conversation, answered by the org's webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// Where the runtime posts the call; `None` for tools the runtime handles itself.
    pub url: Option<String>,
    /// A JSON Schema object for the tool's arguments, kept as JSON text.
    pub parameters_json: String,
}

impl Tool {
    pub fn parse_name(raw: &str) -> Result<String, String> {
        let ok =
            (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(raw.to_owned()) } else { Err("Tool names are 1 to 64 letters, digits, '_' or '-'.".to_owned()) }
    }

    pub fn parse_description(raw: &str) -> Result<String, String> {
        check_length(raw, MAX_TOOL_DESCRIPTION_CHARS)?;
        Ok(raw.to_owned())
    }

    pub fn parse_url(raw: &str) -> Result<String, String> {
        check_length(raw, MAX_URL_CHARS)?;
        let rest = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://")).unwrap_or("");
        if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
            return Err("Enter a valid URL.".to_owned());
        }
        Ok(raw.to_owned())
    }
}

/// Checks a set of tools as a whole.
pub fn check_tools(tools: &[Tool]) -> Result<(), String> {
    if tools.len() > MAX_TOOLS {
        return Err(format!("Ensure this field has no more than {MAX_TOOLS} elements."));
    }
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err("Tool names must be unique.".to_owned());
    }
    Ok(())
}

/// Everything that configures an agent. Every field is already valid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSpec {
    pub name: String,
    pub prompt: String,
    pub voice: Voice,
    pub greeting: String,
    pub max_hold_seconds: u32,
    pub tools: Vec<Tool>,
    /// What the agent runtime reads besides the prompt and voice. Agents recorded before the
    /// settings existed fold with the defaults.
    #[serde(default)]
    pub settings: AgentSettings,
}

impl AgentSpec {
    pub fn parse_name(raw: &str) -> Result<String, String> {
        crate::fields::required_name(raw, MAX_NAME_CHARS)
    }

    pub fn parse_prompt(raw: &str) -> Result<String, String> {
        check_length(raw, MAX_PROMPT_CHARS)?;
        Ok(raw.to_owned())
    }

    pub fn parse_greeting(raw: &str) -> Result<String, String> {
        check_length(raw, MAX_GREETING_CHARS)?;
        Ok(raw.to_owned())
    }

    pub fn parse_max_hold_seconds(raw: i64) -> Result<u32, String> {
        if (0..=i64::from(MAX_HOLD_SECONDS_LIMIT)).contains(&raw) {
            Ok(raw as u32)
        } else if raw < 0 {
            Err("Ensure this value is greater than or equal to 0.".to_owned())
        } else {
            Err(format!("Ensure this value is less than or equal to {MAX_HOLD_SECONDS_LIMIT}."))
        }
    }

    /// A spec with the given name and every other field at its default.
    pub fn named(name: String) -> Self {
        Self {
            name,
            prompt: String::new(),
            voice: Voice::default(),
            greeting: String::new(),
            max_hold_seconds: DEFAULT_MAX_HOLD_SECONDS,
            tools: Vec::new(),
            settings: AgentSettings::default(),
        }
    }
}

/// A partial update: each `Some` field replaces the agent's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub prompt: Option<String>,
    pub voice: Option<Voice>,
    pub greeting: Option<String>,
    pub max_hold_seconds: Option<u32>,
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub settings: AgentSettingsPatch,
}

impl AgentPatch {
    /// A patch that replaces every field, as a PUT does.
    pub fn replacing(spec: AgentSpec) -> Self {
        Self {
            name: Some(spec.name),
            prompt: Some(spec.prompt),
            voice: Some(spec.voice),
            greeting: Some(spec.greeting),
            max_hold_seconds: Some(spec.max_hold_seconds),
            tools: Some(spec.tools),
            settings: AgentSettingsPatch::replacing(spec.settings),
        }
    }

    pub fn apply(self, spec: &AgentSpec) -> AgentSpec {
        AgentSpec {
            name: self.name.unwrap_or_else(|| spec.name.clone()),
            prompt: self.prompt.unwrap_or_else(|| spec.prompt.clone()),
            voice: self.voice.unwrap_or_else(|| spec.voice.clone()),
            greeting: self.greeting.unwrap_or_else(|| spec.greeting.clone()),
            max_hold_seconds: self.max_hold_seconds.unwrap_or(spec.max_hold_seconds),
            tools: self.tools.unwrap_or_else(|| spec.tools.clone()),
            settings: self.settings.apply(&spec.settings),
        }
    }
}

/// Reads `if_updated_at`, the time a client last read an agent at, which an update makes its
/// precondition. The contract's times are ISO 8601; they compare at milliseconds.
pub fn parse_if_updated_at(raw: &str) -> Result<Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| Timestamp::from_millis(t.timestamp_millis()))
        .map_err(|_| "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].".to_owned())
}
