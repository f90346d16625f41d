//! Errors of the simulator.

use std::path::PathBuf;

/// What can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario file or `--set` value is malformed or out of range.
    #[error("scenario: {0}")]
    Scenario(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The protocol refused something (an export, a risk configuration).
    #[error("protocol: {0}")]
    Protocol(#[from] kith_core::Error),
    /// A plot could not be drawn.
    #[error("plot {}: {message}", path.display())]
    Plot {
        /// The plot file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The simulator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
