//! `kith-agent`: see `kith-agent --help`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = kith_agent::cli::Cli::parse();
    match kith_agent::cli::main(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kith-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
