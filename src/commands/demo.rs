//! `demo`: create a demo store, or a large synthetic one for benchmarks.

use crate::cli::DemoArgs;
use crate::demo;
use crate::error::{Error, ExitStatus, Result};
use crate::store::{Access, Store, Table};

pub async fn run(args: &DemoArgs) -> Result<ExitStatus> {
    // Never a Kestra configuration found in the environment: demo writes.
    let target = super::resolve_explicit(&args.connection)?.target;
    let timeout = super::connect_timeout(&args.connection, &target);
    let mut store = Store::connect(&target, Access::Create, timeout).await?;
    let present = store.iam_tables().await?;
    if !args.reset && present.len() == Table::ALL.len() {
        return Err(Error::usage(format!(
            "{} already holds an IAM store; pass --reset to replace it (its data is lost)",
            target.display()
        )));
    }
    if !args.reset && !present.is_empty() {
        // Adding the missing tables and rows beside someone's tables would
        // leave half a store of two origins.
        let names: Vec<String> = present.iter().map(|t| format!("`{}`", t.name())).collect();
        return Err(Error::usage(format!(
            "{} already holds some of the IAM tables ({}); demo builds a store only where none of them is, and wrote nothing (pass --reset to drop them and start over; their data is lost)",
            target.display(),
            names.join(", ")
        )));
    }
    // One transaction: a demo that fails leaves nothing behind.
    store.begin_demo(args.reset).await?;
    let written = match args.users {
        None => demo::write(&mut store, demo::small()).await,
        Some(users) => {
            let shape = demo::Shape {
                users,
                bindings_per_user: args.bindings_per_user,
                memberships_per_user: args.memberships_per_user,
                seed: args.seed,
            };
            demo::load_synthetic(&mut store, &shape).await
        }
    };
    let counts = match written {
        Ok(counts) => counts,
        Err(e) => {
            store.abandon_demo().await;
            return Err(e);
        }
    };
    if let Err(e) = store.commit().await {
        store.abandon_demo().await;
        return Err(e);
    }
    crate::say!(
        "Created a demo store at {}: {} tenant(s), {} user(s), {} group(s), {} role(s), {} binding(s).",
        target.display(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4]
    );
    Ok(ExitStatus::Success)
}
