//! Command-line flags and environment variables; every setting has a default, so
//! `kith-server` with no arguments serves on 127.0.0.1:8080 from `./kith-data`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// How hard SQLite flushes each committed batch to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: a committed batch survives the server being
    /// killed (it is in the operating system's page cache); it can be lost only if the
    /// whole machine loses power or crashes before the next WAL checkpoint.
    Normal,
    /// `synchronous=FULL`: every committed batch is fsync'ed before it is acknowledged,
    /// so it also survives power loss, at the cost of one fsync per batch.
    Full,
}

/// A PostgreSQL connection URL (`postgres://user:password@host:port/db`, or
/// `postgres://user@/db?host=/socket/dir`). Its Debug form hides everything but the
/// scheme, since the URL may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as given.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("expected a postgres:// or postgresql:// URL".into());
        }
        Ok(Self(url.to_owned()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(postgres://…)")
    }
}

/// Where export files go instead of the data directory: `s3://BUCKET`, optionally with
/// `?endpoint=URL&region=NAME` (an S3-compatible server other than AWS's, its region).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportStoreUrl {
    url: String,
    bucket: String,
    options: Vec<(String, String)>,
}

impl ExportStoreUrl {
    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The query's options, in order.
    pub fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl std::str::FromStr for ExportStoreUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or("expected an s3://bucket URL")?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(format!(
                "{bucket:?} is no bucket name (3 to 63 lower-case letters, digits, '-' or '.'; \
                 no path: files go to v1/… in the bucket)"
            ));
        }
        let options = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if !value.is_empty() => Ok((key.to_owned(), value.to_owned())),
                _ => Err(format!("{pair:?}: expected key=value")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            url: url.to_owned(),
            bucket: bucket.to_owned(),
            options,
        })
    }
}

/// How the public listener answers downloads of export files kept in a bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ExportServe {
    /// Reads the file from the store and answers with it (ETag, caching, ranges), as from
    /// the data directory.
    #[default]
    Proxy,
    /// Answers `307 Temporary Redirect` to the file's URL in the bucket (which must then be
    /// publicly readable, or behind a CDN named by `--export-public-url`).
    Redirect,
}

/// Settings of one server process.
#[derive(Clone, Debug, Parser)]
#[command(name = "kith-server", version, about = "Kith key server", long_about = None)]
pub struct Config {
    /// Public listener: publish, `/v1/config`, `/healthz` (port 0 picks a free port and
    /// prints it).
    #[arg(long, env = "KITH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Operator listener: admin API, case worker portal, `/metrics`, `/healthz`. Keep
    /// it on a private address.
    #[arg(long, env = "KITH_OPERATOR_LISTEN", default_value = "127.0.0.1:8081")]
    pub operator_listen: SocketAddr,

    /// Most connections the public listener holds open at once.
    #[arg(long, env = "KITH_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Seconds a client has to send a request's headers, counted from connecting or
    /// from the previous answer, so it is also how long an idle connection stays open.
    /// (A body then has 10 s more.)
    #[arg(long, env = "KITH_REQUEST_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub request_timeout_seconds: u64,

    /// The reverse proxy (TLS terminator, CDN) in front of the public listener: its
    /// `X-Forwarded-For` names the client. Without it, the peer is the client.
    #[arg(long, env = "KITH_TRUSTED_PROXY")]
    pub trusted_proxy: Option<IpAddr>,

    /// Write the admin API key created on first start to this file (mode 0600)
    /// instead of standard output.
    #[arg(long, env = "KITH_ADMIN_KEY_FILE")]
    pub admin_key_file: Option<PathBuf>,

    /// The portal is served over HTTPS (behind a TLS proxy): its session cookie is
    /// `__Host-kith_session` with `Secure`, and form origins must be `https://`.
    #[arg(long, env = "KITH_PORTAL_SECURE_COOKIE")]
    pub portal_secure_cookie: bool,

    /// Largest size of the database in MiB; beyond it publishes get 503 storage_full,
    /// as on a full disk. No limit but the disk's when not given.
    #[arg(long, env = "KITH_MAX_DATABASE_MIB",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_database_mib: Option<u32>,

    /// Keep the data in this PostgreSQL database instead of SQLite in the data directory,
    /// so that several servers can share it (see the README's scale-out section). The
    /// schema is created and migrated on start.
    #[arg(
        long = "database",
        env = "KITH_DATABASE_URL",
        value_name = "POSTGRES_URL"
    )]
    pub database_url: Option<DatabaseUrl>,

    /// Keep export files and their indexes in this S3-compatible bucket instead of the data
    /// directory, so that every instance serves every file:
    /// `s3://BUCKET?endpoint=http://127.0.0.1:9000&region=eu-west-1` (endpoint and region are
    /// optional). Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "KITH_EXPORT_STORE", value_name = "S3_URL")]
    pub export_store: Option<ExportStoreUrl>,

    /// How the public listener serves export files kept in a bucket: `proxy` reads and
    /// sends them, `redirect` sends devices to the bucket (or `--export-public-url`).
    #[arg(long, env = "KITH_EXPORT_SERVE", value_enum, default_value_t = ExportServe::Proxy,
          requires = "export_store")]
    pub export_serve: ExportServe,

    /// Base URL that redirected downloads go to (a CDN in front of the bucket); a file's
    /// URL is this plus `/v1/exports/…`. Default: the endpoint's URL of the bucket.
    #[arg(
        long,
        env = "KITH_EXPORT_PUBLIC_URL",
        value_name = "URL",
        requires = "export_store"
    )]
    pub export_public_url: Option<String>,

    /// Directory holding the database and the server's keys; created on first start.
    #[arg(long, env = "KITH_DATA_DIR", default_value = "./kith-data")]
    pub data_dir: PathBuf,

    /// How long an issued verification code stays valid, in minutes.
    #[arg(long, env = "KITH_CODE_LIFETIME_MINUTES", default_value_t = 24 * 60,
          value_parser = clap::value_parser!(u32).range(1..=30 * 24 * 60))]
    pub code_lifetime_minutes: u32,

    /// Failed code redemptions allowed per hour, summed over all clients that failed
    /// before (the server-wide guessing budget; see the README).
    #[arg(long, env = "KITH_FAILED_REDEMPTIONS_PER_HOUR", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub failed_redemptions_per_hour: u32,

    /// Failed redemptions allowed in a burst before the hourly rate applies.
    #[arg(long, env = "KITH_FAILED_REDEMPTIONS_BURST", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub failed_redemptions_burst: u32,

    /// Failed redemptions one source (IPv4 address, IPv6 /64) may have in a day.
    #[arg(long, env = "KITH_FAILED_REDEMPTIONS_PER_SOURCE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub failed_redemptions_per_source: u32,

    /// Most requests committed to the database in one transaction (group commit).
    #[arg(long, env = "KITH_WRITE_BATCH", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub write_batch: u32,

    /// Flush policy of committed batches.
    #[arg(long, env = "KITH_DURABILITY", value_enum, default_value_t = Durability::Normal)]
    pub durability: Durability,

    /// Risk configuration published in `/v1/config`: a JSON file in ENX's format
    /// (e.g. one of a health authority's); the ENX defaults when not given.
    #[arg(long, env = "KITH_RISK_CONFIG")]
    pub risk_config: Option<PathBuf>,

    /// Key id put into export signatures and `/v1/config` (Apple uses the country's MCC).
    #[arg(long, env = "KITH_EXPORT_KEY_ID", default_value = "kith")]
    pub export_key_id: String,

    /// Version of the export signing key, as in GAEN's `verification_key_version`.
    /// (Id and version name the first key only; `kith-server keys rotate` adds the others.)
    #[arg(long, env = "KITH_EXPORT_KEY_VERSION", default_value = "v1")]
    pub export_key_version: String,

    /// The venue dashboard flags a cluster at a place with this many positive check-ins ...
    #[arg(long, env = "KITH_CLUSTER_MIN_CHECK_INS", default_value_t = 3)]
    pub cluster_min_check_ins: u64,

    /// ... published within this many days.
    #[arg(long, env = "KITH_CLUSTER_WINDOW_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..=14))]
    pub cluster_window_days: u32,

    /// Export batching, distribution and retention.
    #[command(flatten)]
    pub export: ExportConfig,
}

/// Settings of the export batcher and of retention.
#[derive(Clone, Debug, clap::Args)]
pub struct ExportConfig {
    /// Length of an export window in seconds; must divide a day (3600 = hourly files).
    #[arg(long = "export-period", env = "KITH_EXPORT_PERIOD", default_value_t = 3600,
          value_parser = parse_period)]
    pub period_seconds: u64,

    /// Seconds a window must have ended before it is exported, so that every key released
    /// in it has been committed (a publish is answered within seconds).
    #[arg(
        long = "export-min-age",
        env = "KITH_EXPORT_MIN_AGE",
        default_value_t = 300
    )]
    pub min_age_seconds: u64,

    /// Granularity in seconds of the key times the database keeps: arrival rounded down
    /// and release time rounded up to a multiple of it (Google's `TRUNCATE_WINDOW`), so a
    /// copy of the database cannot order uploads within it. No key is exported before
    /// the window it was released in ends; a shorter one than the hour weakens that
    /// unlinkability and is meant for demos and tests. Must divide a day.
    #[arg(long = "truncate-window", env = "KITH_TRUNCATE_WINDOW", default_value_t = 3600,
          value_parser = parse_period)]
    pub truncate_seconds: u64,

    /// Batches with fewer real keys are padded with fake ones up to this many ...
    #[arg(
        long = "export-min-keys",
        env = "KITH_EXPORT_MIN_KEYS",
        default_value_t = 1000
    )]
    pub min_keys: usize,

    /// ... plus a random number from 0 to this.
    #[arg(
        long = "export-padding-range",
        env = "KITH_EXPORT_PADDING_RANGE",
        default_value_t = 100
    )]
    pub padding_range: usize,

    /// Trace-warning packages with fewer real check-ins are padded with fake reports up
    /// to this many ...
    #[arg(
        long = "trace-warning-min-reports",
        env = "KITH_TRACE_WARNING_MIN_REPORTS",
        default_value_t = 100
    )]
    pub min_reports: usize,

    /// ... plus a random number from 0 to this.
    #[arg(
        long = "trace-warning-padding-range",
        env = "KITH_TRACE_WARNING_PADDING_RANGE",
        default_value_t = 20
    )]
    pub report_padding_range: usize,

    /// Most keys in one file; bigger batches are split into several.
    #[arg(long = "export-max-keys-per-file", env = "KITH_EXPORT_MAX_KEYS_PER_FILE",
          default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_keys_per_file: u64,

    /// The region written into export files (e.g. the country's MCC).
    #[arg(
        long = "export-region",
        env = "KITH_EXPORT_REGION",
        default_value = "kith"
    )]
    pub region: String,

    /// Seconds a batcher may hold a batch before another one may take it over.
    #[arg(
        long = "export-lease",
        env = "KITH_EXPORT_LEASE",
        default_value_t = 300
    )]
    pub lease_seconds: u64,

    /// Keys, codes and export files older than this many days are dropped.
    #[arg(long = "retention-days", env = "KITH_RETENTION_DAYS", default_value_t = 14,
          value_parser = clap::value_parser!(u64).range(1..=365))]
    pub retention_days: u64,

    /// Seconds between dropping a file from the index and deleting it, so that a client
    /// holding a cached index still finds every file it lists.
    #[arg(
        long = "export-delete-delay",
        env = "KITH_EXPORT_DELETE_DELAY",
        default_value_t = 86_400
    )]
    pub delete_delay_seconds: u64,
}

/// Export and truncate windows align to UTC days, so their length must divide one.
fn parse_period(text: &str) -> Result<u64, String> {
    let period: u64 = text.parse().map_err(|e| format!("{e}"))?;
    if period == 0 || 86_400 % period != 0 {
        return Err(format!("{period} s does not divide a day (86400 s) evenly"));
    }
    Ok(period)
}

impl Config {
    /// The defaults, as `kith-server` with no arguments would use them, with another data directory.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::parse_from(["kith-server"]);
        config.data_dir = data_dir.into();
        config
    }

    /// How long an issued code stays valid.
    pub fn code_lifetime_seconds(&self) -> u64 {
        u64::from(self.code_lifetime_minutes) * 60
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_store_urls_name_a_bucket_and_options() {
        let url: ExportStoreUrl = "s3://kith-exports?endpoint=http://127.0.0.1:9000&region=eu-1"
            .parse()
            .unwrap();
        assert_eq!(url.bucket(), "kith-exports");
        assert_eq!(
            url.options().collect::<Vec<_>>(),
            [("endpoint", "http://127.0.0.1:9000"), ("region", "eu-1")]
        );
        assert_eq!(
            "s3://kith-exports/"
                .parse::<ExportStoreUrl>()
                .unwrap()
                .bucket(),
            "kith-exports"
        );
        for bad in [
            "kith-exports",
            "https://kith-exports",
            "s3://",
            "s3://ab",
            "s3://Kith",
            "s3://kith/exports",
            "s3://kith-exports?endpoint",
            "s3://kith-exports?region=",
        ] {
            assert!(bad.parse::<ExportStoreUrl>().is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_export_store_text_parses_or_is_refused_with_a_reason(text in "(s3://)?.{0,80}") {
            match text.parse::<ExportStoreUrl>() {
                Ok(url) => {
                    proptest::prop_assert!(text.starts_with("s3://"));
                    proptest::prop_assert!((3..=63).contains(&url.bucket().len()));
                }
                Err(reason) => proptest::prop_assert!(!reason.is_empty()),
            }
        }
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = Config::parse_from(["kith-server"]);
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("./kith-data"));
        assert_eq!(config.code_lifetime_minutes, 1440);
        assert_eq!(config.durability, Durability::Normal);
    }

    #[test]
    fn flags_override_defaults_and_bad_values_are_refused() {
        let config = Config::parse_from([
            "kith-server",
            "--listen",
            "127.0.0.1:0",
            "--durability",
            "full",
        ]);
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.durability, Durability::Full);
        assert!(Config::try_parse_from(["kith-server", "--code-lifetime-minutes", "0"]).is_err());
        assert!(Config::try_parse_from(["kith-server", "--listen", "nowhere"]).is_err());
    }
}
