//! The one state shared by every handler.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use kith_core::risk::RiskConfig;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::config::Config;
use crate::export::serving::ExportCache;
use crate::guessing::SourceKey;
use crate::keyring::Keyring;
use crate::sessions::Sessions;
use crate::signing_keys::SigningKeysCell;
use crate::storage::Storage;
use crate::venues::Venues;
use crate::writer::Writer;

/// What handlers share: settings, clock, keys, the database writer, metrics, portal sessions.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The contents of [`AppState`].
pub struct Shared {
    /// The process's settings.
    pub config: Config,
    /// "Now": the system clock, or a test's manual one.
    pub clock: Clock,
    /// The server's secrets.
    pub keyring: Keyring,
    /// Risk scoring settings published to phones.
    pub risk: RiskConfig,
    /// Where everything is stored.
    pub storage: Arc<dyn Storage>,
    /// The database writer.
    pub writer: Writer,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Case-worker accounts and the audit log.
    pub accounts: Arc<Accounts>,
    /// Registered venues and the check-in counts of the dashboard.
    pub venues: Venues,
    /// Logged-in case workers.
    pub sessions: Sessions,
    /// The export signing keys, reloaded by each batcher pass.
    pub signing_keys: SigningKeysCell,
    /// Export files served from the data directory.
    pub exports: ExportCache,
    /// Today's key for telling sources apart without knowing them.
    pub sources: SourceKey,
}

impl AppState {
    /// Bundles the parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("listen", &self.config.listen)
            .field("clock", &self.clock)
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Shared { .. }")
    }
}
