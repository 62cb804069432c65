//! Runs the deterministic simulation over many seeds. `SWITCHBOARD_SIM_SEEDS` says how many
//! (default 40, a minute or so), `SWITCHBOARD_SIM_SEED` the first (default 1), and
//! `SWITCHBOARD_SIM_STEPS` how many steps each seed plays (default 400). A failing seed prints
//! itself with the command that replays it.

use simulation::Options;

fn env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(raw) => raw.parse().unwrap_or_else(|_| panic!("{name}={raw} is not a number")),
        Err(_) => default,
    }
}

#[test]
fn every_seed_holds_the_invariants() {
    let first = env("SWITCHBOARD_SIM_SEED", 1);
    let seeds = env("SWITCHBOARD_SIM_SEEDS", 40);
    let steps = env("SWITCHBOARD_SIM_STEPS", 400) as u32;
    let started = std::time::Instant::now();
    let mut totals = simulation::Outcome::default();
    for seed in first..first + seeds {
        match simulation::run(&Options { seed, steps }) {
            Ok(outcome) => {
                totals.calls_placed += outcome.calls_placed;
                totals.calls_acknowledged += outcome.calls_acknowledged;
                totals.cents_charged += outcome.cents_charged;
                totals.test_runs += outcome.test_runs;
                totals.batches += outcome.batches;
                totals.crashes += outcome.crashes;
                totals.effects += outcome.effects;
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    eprintln!(
        "{seeds} seeds from {first}, {steps} steps each, in {:.1} s: {} calls placed ({} acknowledged, {} cents charged), {} test runs, {} batches, {} crashes, {} effects performed",
        started.elapsed().as_secs_f64(),
        totals.calls_placed,
        totals.calls_acknowledged,
        totals.cents_charged,
        totals.test_runs,
        totals.batches,
        totals.crashes,
        totals.effects
    );
}

#[test]
fn a_seed_replays_identically() {
    let seed = env("SWITCHBOARD_SIM_SEED", 1);
    let options = Options { seed, steps: 200 };
    let first = simulation::run(&options).map(|o| o.effects);
    let second = simulation::run(&options).map(|o| o.effects);
    assert_eq!(first, second);
}
