//! The `signet` binary. See `signet --help`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = signet::cli::Cli::parse();
    signet::cli::run(cli).await
}
