use std::process::ExitCode;

/// Faster than the system's malloc on the millions of small allocations of
/// `plan` and `apply`, and less memory kept (Cargo.toml says by how much).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match sync_access::cli::Cli::parse_args() {
        Ok(cli) => cli,
        // Help and version are successes; a usage error exits 1 (docs/exit-codes.md §1),
        // not clap's 2, which means "changes planned" here.
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(sync_access::ExitStatus::Error.code());
        }
    };
    let verbose = cli.global.is_verbose();
    match sync_access::run(cli) {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            sync_access::report(&err, verbose);
            ExitCode::from(err.exit_status().code())
        }
    }
}
