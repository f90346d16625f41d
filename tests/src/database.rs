//! The server's PostgreSQL database, read as the tests check what was stored.

/// Diagnosis keys stored in the PostgreSQL database at `url`.
pub async fn postgres_key_count(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the server's database: {e}"));
    let connection = tokio::spawn(connection);
    let count = client
        .query_one("SELECT count(*) FROM diagnosis_keys", &[])
        .await
        .expect("counting the stored keys")
        .get(0);
    connection.abort();
    count
}
