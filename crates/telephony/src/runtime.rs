//! The simulated agent runtime: what the agent and the other party say. Speech and the
//! language model live outside this engine; this stands in for them with a fixed, readable
//! conversation shaped by the agent's configuration and, for test calls, the scenario prompt
//! that drives the test bot.

use domain::agent::AgentSpec;
use domain::call::Speaker;

/// The turns of a simulated conversation, in order.
pub fn conversation(agent: &AgentSpec, scenario_prompt: Option<&str>) -> Vec<(Speaker, String)> {
    let greeting = if agent.greeting.trim().is_empty() {
        format!("Hello, this is {}. How can I help you today?", agent.name)
    } else {
        agent.greeting.clone()
    };
    let opener = match scenario_prompt.map(str::trim).filter(|s| !s.is_empty()) {
        Some(scenario) => format!("Hi. {scenario}"),
        None => "Hi, I'm returning your call.".to_owned(),
    };
    let answer = match first_sentence(&agent.prompt) {
        Some(sentence) => format!("Of course. {sentence}"),
        None => "Of course, I can help you with that.".to_owned(),
    };
    vec![
        (Speaker::Agent, greeting),
        (Speaker::Callee, opener),
        (Speaker::Agent, answer),
        (Speaker::Callee, "Great, thank you. That's all I needed.".to_owned()),
        (Speaker::Agent, "You're welcome. Goodbye!".to_owned()),
    ]
}

fn first_sentence(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let end = text.find(['.', '!', '?']).map_or(text.len(), |i| i + 1);
    Some(text[..end].chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversation_follows_the_agent_and_the_scenario() {
        let mut agent = AgentSpec::named("Ada".into());
        agent.prompt = "You sell refunds. Be kind.".into();
        let turns = conversation(&agent, Some("Ask about refunds."));
        assert_eq!(turns[0], (Speaker::Agent, "Hello, this is Ada. How can I help you today?".into()));
        assert_eq!(turns[1], (Speaker::Callee, "Hi. Ask about refunds.".into()));
        assert_eq!(turns[2], (Speaker::Agent, "Of course. You sell refunds.".into()));
        assert_eq!(turns.last().unwrap().0, Speaker::Agent);
    }
}
