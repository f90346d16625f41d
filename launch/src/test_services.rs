//! The servers `scripts/test` starts for the tests, as tests find them: a PostgreSQL server
//! (its URL in `KITH_TEST_POSTGRES`) and an S3-compatible store (moto's, at `KITH_TEST_S3`,
//! with `AWS_*` credentials set), and fresh names and buckets on them, so that every test
//! (and every data directory in it) gets a database and a bucket of its own.
//!
//! A database is made by `kith_server::create_database(server, &fresh_name(…))`: creating
//! one takes a PostgreSQL client, which this crate, a process launcher, does without.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::LaunchError;

/// The environment variable with the PostgreSQL server's URL.
pub const POSTGRES_VAR: &str = "KITH_TEST_POSTGRES";
/// The environment variable with the S3 server's URL (`http://127.0.0.1:PORT`).
pub const S3_VAR: &str = "KITH_TEST_S3";

/// Why a test cannot use a service: the message its skip prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing(pub String);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The URL of the PostgreSQL server the tests use.
pub fn postgres_server() -> Result<String, Missing> {
    std::env::var(POSTGRES_VAR).map_err(|_| {
        Missing(format!(
            "{POSTGRES_VAR} is not set (scripts/test starts a PostgreSQL server and sets it)"
        ))
    })
}

/// The URL of the S3 server the tests use, once credentials for it are set too.
pub fn s3_server() -> Result<String, Missing> {
    let credentials = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .iter()
        .all(|name| std::env::var_os(name).is_some());
    match std::env::var(S3_VAR) {
        Ok(url) if credentials => Ok(url),
        _ => Err(Missing(format!(
            "{S3_VAR}, AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set (scripts/test \
             starts an S3 server and sets them)"
        ))),
    }
}

/// `prefix` followed by 16 random hex digits: a database or bucket name no other test
/// draws (a database name wants `_` after the prefix, a bucket `-`).
pub fn fresh_name(prefix: &str) -> Result<String, LaunchError> {
    let mut random = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    Ok(format!("{prefix}{:016x}", u64::from_ne_bytes(random)))
}

/// Creates `bucket` on the S3 server at `endpoint` (`http://host:port`, as
/// [`s3_server`] gives it); with `public_read`, anyone may read its objects, as
/// `--export-serve redirect` needs.
pub fn create_bucket(endpoint: &str, bucket: &str, public_read: bool) -> Result<(), LaunchError> {
    put(endpoint, &format!("/{bucket}"), "")?;
    if public_read {
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        );
        put(endpoint, &format!("/{bucket}?policy"), &policy)?;
    }
    Ok(())
}

/// One unsigned HTTP/1.1 `PUT` (moto takes them), failing unless it is answered 2xx.
fn put(endpoint: &str, path: &str, body: &str) -> Result<(), LaunchError> {
    let failed = |why: String| LaunchError::S3(format!("PUT {endpoint}{path}: {why}"));
    let host = endpoint
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .ok_or_else(|| failed("the endpoint is not an http:// URL".into()))?;
    let exchange = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(host)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    };
    let answer = exchange().map_err(|e| failed(e.to_string()))?;
    let status = answer.split(' ').nth(1).unwrap_or("");
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(failed(
            answer.lines().next().unwrap_or("no answer").to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_differ_and_keep_their_prefix() {
        let (a, b) = (fresh_name("kith_").unwrap(), fresh_name("kith_").unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("kith_") && a.len() == 5 + 16, "{a}");
    }

    #[test]
    fn a_bucket_needs_an_http_endpoint_that_answers() {
        let error = create_bucket("https://example.org", "b", false).unwrap_err();
        assert!(error.to_string().contains("not an http:// URL"), "{error}");
        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(create_bucket(&format!("http://{addr}"), "b", false).is_err());
    }

    /// On the S3 server scripts/test starts: a created bucket takes objects, one never
    /// created does not.
    #[test]
    fn buckets_are_created_on_the_test_s3_server() {
        let endpoint = match s3_server() {
            Ok(endpoint) => endpoint,
            Err(missing) => return kith_test_support::skip(missing),
        };
        let bucket = fresh_name("kith-launch-").unwrap();
        create_bucket(&endpoint, &bucket, true).unwrap();
        put(&endpoint, &format!("/{bucket}/object"), "bytes").unwrap();
        let missing = put(&endpoint, "/kith-launch-no-such-bucket/object", "bytes");
        assert!(missing.is_err(), "a bucket that was not created");
    }
}
