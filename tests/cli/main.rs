//! The one integration-test binary: runs the real `sync-access` against
//! SQLite always, and PostgreSQL and MariaDB/MySQL when configured.

mod apply;
mod crash;
mod fixtures;
mod hostile;
mod hostile_store;
mod hostile_text;
mod plan;
mod revert;
mod review;
mod show;
mod signing;
mod support;
mod tls;

use libtest_mimic::{Arguments, Trial};
use support::{Kind, Scenario};

fn main() {
    let args = Arguments::from_args();
    let scenarios: Vec<&Scenario> = plan::SCENARIOS
        .iter()
        .chain(apply::SCENARIOS)
        .chain(crash::SCENARIOS)
        .chain(hostile::SCENARIOS)
        .chain(hostile_text::SCENARIOS)
        .chain(hostile_store::SCENARIOS)
        .chain(review::SCENARIOS)
        .chain(revert::SCENARIOS)
        .collect();
    let mut trials = Vec::new();
    for kind in Kind::ALL {
        let configured = kind.admin_url();
        if let Err(reason) = &configured {
            eprintln!("note: {} tests are skipped: {reason}", kind.name());
        }
        for scenario in &scenarios {
            let run = scenario.run;
            let name = format!("{}::{}", kind.name(), scenario.name);
            // libtest-mimic has no message for an ignored trial: the reason
            // a scenario does not apply is noted before the run.
            let applies = (scenario.applies)(kind);
            if let Err(why) = applies {
                eprintln!("note: {name} is ignored: {why}");
            }
            let trial = Trial::test(name, move || {
                run(kind);
                Ok(())
            });
            trials.push(trial.with_ignored_flag(configured.is_err() || applies.is_err()));
        }
    }
    trials.extend(plan::single_trials());
    trials.extend(show::single_trials());
    trials.extend(apply::single_trials());
    trials.extend(hostile::single_trials());
    trials.extend(hostile_text::single_trials());
    trials.extend(hostile_store::single_trials());
    trials.extend(signing::single_trials());
    trials.extend(tls::trials());
    libtest_mimic::run(&args, trials).exit();
}
