//! The simulator's one error type.

/// Why a simulation could not be built or an action not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A parameter is outside what the simulator takes.
    #[error("parameter `{name}`: {reason}")]
    Param {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it, and what would be right.
        reason: String,
    },
    /// A node index that is not an honest node of this network.
    #[error("no honest node {index} (the network has {nodes})")]
    NoNode {
        /// The index given.
        index: usize,
        /// Honest nodes in the network.
        nodes: usize,
    },
    /// The node cannot do that now.
    #[error("node {index}: {reason}")]
    Node {
        /// Which.
        index: usize,
        /// Why not.
        reason: String,
    },
    /// A time before the simulation's clock.
    #[error("time {at} s is before the simulation's clock ({now} s)")]
    Past {
        /// The time asked for, in seconds.
        at: f64,
        /// The clock, in seconds.
        now: f64,
    },
}

impl Error {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Error {
        Error::Param {
            name,
            reason: reason.into(),
        }
    }
}
