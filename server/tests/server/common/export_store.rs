//! Where the tests' servers keep export files: the data directory, or a bucket of the
//! test's own on the S3-compatible server that scripts/test starts (`KITH_TEST_S3`).

use std::path::Path;

use kith_launch::test_services;
use kith_server::Config;

/// An export store for a test's servers.
#[derive(Clone, Debug)]
pub enum ExportBackend {
    /// The data directory (the default).
    DataDir,
    /// A bucket on the test S3 server.
    Bucket {
        /// The server, `http://127.0.0.1:PORT`.
        endpoint: String,
        /// The bucket's name.
        bucket: String,
    },
}

impl ExportBackend {
    /// A new bucket on `KITH_TEST_S3`, readable by anyone (as `--export-serve redirect`
    /// needs), or `None` after a skip when there is no S3 server.
    pub fn fresh_bucket() -> Option<Self> {
        let endpoint = match test_services::s3_server() {
            Ok(endpoint) => endpoint,
            Err(missing) => {
                kith_test_support::skip(missing);
                return None;
            }
        };
        let bucket = test_services::fresh_name("kith-").unwrap();
        test_services::create_bucket(&endpoint, &bucket, true).unwrap();
        Some(Self::Bucket { endpoint, bucket })
    }

    /// The store `config` names.
    pub fn of(config: &Config) -> Self {
        let Some(url) = &config.export_store else {
            return Self::DataDir;
        };
        let endpoint = url
            .options()
            .find_map(|(name, value)| (name == "endpoint").then_some(value))
            .expect("the test bucket's endpoint");
        Self::Bucket {
            endpoint: endpoint.to_owned(),
            bucket: url.bucket().to_owned(),
        }
    }

    /// `--export-store` for this store, if it is a bucket.
    pub fn url(&self) -> Option<String> {
        match self {
            Self::DataDir => None,
            Self::Bucket { endpoint, bucket } => Some(format!(
                "s3://{bucket}?endpoint={endpoint}&region=us-east-1"
            )),
        }
    }

    /// Points `config` at this store.
    pub fn configure(&self, config: &mut Config) {
        config.export_store = self.url().map(|url| url.parse().unwrap());
    }

    /// The binary's flags for this store.
    pub fn args(&self) -> Vec<String> {
        self.url()
            .map(|url| vec!["--export-store".to_owned(), url])
            .unwrap_or_default()
    }

    /// The public URL of `relative` in the bucket.
    pub fn object_url(&self, relative: &str) -> Option<String> {
        match self {
            Self::DataDir => None,
            Self::Bucket { endpoint, bucket } => Some(format!("{endpoint}/{bucket}/{relative}")),
        }
    }

    /// What the store holds at `relative` (the data directory `data_dir`'s file, or the
    /// bucket's object read straight from the S3 server), if anything.
    pub async fn read(&self, data_dir: &Path, relative: &str) -> Option<Vec<u8>> {
        let Some(url) = self.object_url(relative) else {
            return std::fs::read(data_dir.join(relative)).ok();
        };
        let reply = reqwest::get(url).await.unwrap();
        match reply.status().as_u16() {
            200 => Some(reply.bytes().await.unwrap().to_vec()),
            404 => None,
            status => panic!("{relative}: {status} from the S3 server"),
        }
    }
}
