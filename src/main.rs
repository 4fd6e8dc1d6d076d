use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sync_access::cli::Cli::parse();
    match sync_access::run(cli) {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_status().code())
        }
    }
}
