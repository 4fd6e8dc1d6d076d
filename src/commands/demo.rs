//! `demo`: create a demo store, or a large synthetic one for benchmarks.

use crate::cli::DemoArgs;
use crate::demo;
use crate::error::{Error, ExitStatus, Result};
use crate::store::{Access, Store};

pub async fn run(args: &DemoArgs) -> Result<ExitStatus> {
    // Never a Kestra configuration found in the environment: demo writes.
    let target = super::resolve_explicit(&args.connection)?.target;
    let timeout = super::connect_timeout(&args.connection, &target);
    let mut store = Store::connect(&target, Access::Create, timeout).await?;
    if args.reset {
        store.drop_all().await?;
    } else if store.check_schema().await.is_ok() {
        return Err(Error::usage(format!(
            "{} already holds an IAM store; pass --reset to replace it (its data is lost)",
            target.display()
        )));
    }
    store.create_iam_tables().await?;
    let counts = match args.users {
        None => demo::load(&mut store, demo::small()).await?,
        Some(users) => {
            let shape = demo::Shape {
                users,
                bindings_per_user: args.bindings_per_user,
                memberships_per_user: args.memberships_per_user,
                seed: args.seed,
            };
            demo::load_synthetic(&mut store, &shape).await?
        }
    };
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
