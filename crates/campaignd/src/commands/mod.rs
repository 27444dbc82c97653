//! One module per subcommand. Each exposes its clap `Args` and a `run` function.

pub mod demo;
pub mod plan;
pub mod report;
pub mod run;
pub mod sign;
pub mod sim;
pub mod status;
pub mod suppress;
pub mod validate;
