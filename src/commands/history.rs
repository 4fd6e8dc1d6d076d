//! `history`: the applied plans, newest first.

use crate::cli::{GlobalArgs, HistoryArgs};
use crate::error::{ExitStatus, Result};
use crate::render;
use crate::store::Access;

pub async fn run(global: &GlobalArgs, _args: &HistoryArgs) -> Result<ExitStatus> {
    let (_target, mut store) = super::open_store(global, Access::ReadOnly).await?;
    let records = store.history().await?;
    let table = render::history_table(&records);
    super::stream_stdout(|out| out.write_all(table.as_bytes()))?;
    Ok(ExitStatus::Success)
}
