//! `stratad devnet`.

/// Flags of `stratad devnet`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevnetArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
}

/// Runs the devnet.
pub fn run(_args: &DevnetArgs) -> Result<(), String> {
    Err("unfinished".into())
}
