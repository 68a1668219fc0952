//! # growthflow-cli
//!
//! The `growthflow` command line as a library, so that end-to-end tests run the very commands users run,
//! in-process: [`cli::Cli`] parses the arguments, [`app::run`] runs a command and returns the contract's
//! exit code.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
mod demo;
pub mod init;
pub mod logging;
pub mod progress;
pub mod registry;
mod status;
pub mod tokens;
