//! `history`: the applied plans, newest first.

use crate::cli::{HistoryArgs, HistoryFormat};
use crate::error::{ExitStatus, Result};
use crate::render;
use crate::store::Access;

pub async fn run(args: &HistoryArgs) -> Result<ExitStatus> {
    let (_target, mut store) = super::open_store(&args.connection, Access::ReadOnly).await?;
    let records = store.history().await?;
    match args.format {
        HistoryFormat::Json => super::stream_stdout(|out| {
            let reverts = render::reverted_by_revert(&records);
            for record in &records {
                let of = reverts.get(record.digest.as_str()).copied();
                render::write_json_line(out, &render::history_json(record, of))?;
            }
            Ok(())
        })?,
        HistoryFormat::Table => {
            let style = super::show::terminal_style(args.width, super::show::Stream::Stdout);
            super::stream_stdout(|out| render::history_table(out, &records, style))?
        }
    }
    Ok(ExitStatus::Success)
}
