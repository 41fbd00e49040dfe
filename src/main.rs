//! The `xps` binary: parses the command line and hands over to
//! [`xps::cli::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    xps::cli::run(xps::cli::Args::parse())
}
