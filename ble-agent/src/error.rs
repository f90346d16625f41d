//! The agent's errors, grouped by what the owner has to do about them.

use std::path::PathBuf;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file or a flag is wrong.
    #[error("configuration: {0}")]
    Config(String),

    /// The configuration file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The Bluetooth stack is missing, off or unreachable; the message says what to do.
    #[error("bluetooth: {0}")]
    Bluetooth(String),

    /// The simulated radio's socket failed.
    #[error("simulated radio: {0}")]
    SimulatedRadio(#[source] std::io::Error),

    /// The key server could not be reached or answered with an error.
    #[error("server: {0}")]
    Server(String),

    /// A downloaded file or document is malformed or does not verify.
    #[error("download {name}: {source}")]
    Download {
        /// The file.
        name: String,
        /// What is wrong with it.
        source: kith_core::Error,
    },

    /// The text given as a venue's QR code is not one.
    #[error("venue code: {0}")]
    VenueCode(#[source] kith_core::checkin::CheckinError),

    /// The device store or the protocol engine failed.
    #[error("store: {0}")]
    Core(#[from] kith_core::Error),

    /// A file of the agent's own (data directory, hook) failed.
    #[error("{what}: {source}")]
    Io {
        /// What the agent was doing.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// The agent's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
