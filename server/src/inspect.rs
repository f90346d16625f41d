//! A read-only look into what a server stored — its data directory's SQLite database, or
//! the PostgreSQL database of `--database` — for tests, benchmarks and tools that check
//! it. Queries of a caller's own are plain SQL that both databases understand.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::clock::UnixSeconds;
use crate::config::DatabaseUrl;
use crate::db::DATABASE_FILE;
use crate::error::{AppError, Result};
use crate::postgres::{OwnedRuntime, wait};

/// A server's database, opened to read.
#[derive(Debug)]
pub struct StoredData(Database);

#[derive(Debug)]
enum Database {
    Sqlite(Connection),
    Postgres {
        client: tokio_postgres::Client,
        runtime: OwnedRuntime,
    },
}

/// A stored key as the tests read it back.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Rolling start interval number.
    pub rolling_start: u32,
    /// Rolling period.
    pub rolling_period: u32,
    /// GAEN report type number.
    pub report_type: i32,
    /// Days since onset.
    pub days_since_onset: Option<i32>,
    /// Before this time the key is not exported.
    pub embargo_until: UnixSeconds,
}

/// A value read from a row, as [`StoredData::rows`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer of any width.
    Integer(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl StoredData {
    /// Opens the SQLite database in `data_dir` read-only.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Ok(Self(Database::Sqlite(Connection::open_with_flags(
            data_dir.join(DATABASE_FILE),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?)))
    }

    /// Connects to the PostgreSQL database at `url`.
    pub fn connect(url: &DatabaseUrl) -> Result<Self> {
        let runtime = OwnedRuntime::new()?;
        let url = url.expose().to_owned();
        let client = wait(runtime.handle(), async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            Ok::<_, AppError>(client)
        })?;
        Ok(Self(Database::Postgres { client, runtime }))
    }

    /// The database a server on `data_dir` with `database` (its `--database`, if any) keeps.
    pub fn of(data_dir: &Path, database: Option<&DatabaseUrl>) -> Result<Self> {
        database.map_or_else(|| Self::open(data_dir), Self::connect)
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self.0, Database::Postgres { .. })
    }

    /// Every row `sql` (a query without parameters) returns.
    pub fn rows(&self, sql: &str) -> Result<Vec<Vec<Value>>> {
        match &self.0 {
            Database::Sqlite(connection) => {
                let mut statement = connection.prepare(sql)?;
                let columns = statement.column_count();
                let rows = statement.query_map([], |row| {
                    (0..columns)
                        .map(|i| {
                            Ok(match row.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => Value::Null,
                                rusqlite::types::ValueRef::Integer(i) => Value::Integer(i),
                                rusqlite::types::ValueRef::Real(r) => Value::Text(r.to_string()),
                                rusqlite::types::ValueRef::Text(t) => {
                                    Value::Text(String::from_utf8_lossy(t).into_owned())
                                }
                                rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                            })
                        })
                        .collect()
                })?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
            Database::Postgres { client, runtime } => {
                let rows = wait(runtime.handle(), client.query(sql, &[]))?;
                rows.iter()
                    .map(|row| (0..row.len()).map(|i| postgres_value(row, i)).collect())
                    .collect()
            }
        }
    }

    /// The one integer `sql` returns (`SELECT count(*) …`).
    pub fn count(&self, sql: &str) -> Result<i64> {
        match self.rows(sql)?.first().and_then(|row| row.first()) {
            Some(Value::Integer(n)) => Ok(*n),
            other => Err(AppError::Corrupt(format!(
                "{sql} returned {other:?}, not one integer"
            ))),
        }
    }

    /// The text of every row's first column.
    pub fn texts(&self, sql: &str) -> Result<Vec<String>> {
        self.rows(sql)?
            .into_iter()
            .map(|row| match row.into_iter().next() {
                Some(Value::Text(text)) => Ok(text),
                other => Err(AppError::Corrupt(format!("{sql} returned {other:?}"))),
            })
            .collect()
    }

    /// The names of `table`'s columns, in order.
    pub fn columns(&self, table: &str) -> Result<Vec<String>> {
        let sql = if self.is_postgres() {
            format!(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_name = '{table}' ORDER BY ordinal_position"
            )
        } else {
            format!("SELECT name FROM pragma_table_info('{table}')")
        };
        self.texts(&sql)
    }

    /// The stored keys' bytes in the order the database keeps the rows: what a copy of
    /// its files, or a query without `ORDER BY`, would show.
    pub fn keys_in_storage_order(&self) -> Result<Vec<[u8; 16]>> {
        // SQLite keeps a table in the order of its rowid (the random id); PostgreSQL keeps
        // rows where they were written, which `ctid` (block, slot) names.
        let order = if self.is_postgres() { "ctid" } else { "rowid" };
        self.key_bytes(&format!(
            "SELECT key_data FROM diagnosis_keys ORDER BY {order}"
        ))
    }

    /// Every stored key, for a query's `FROM`: on PostgreSQL those the writer staged and
    /// the export pass has not mixed into `diagnosis_keys` yet too.
    pub fn keys_table(&self) -> &'static str {
        if self.is_postgres() {
            "(SELECT key_data, rolling_start, rolling_period, transmission_risk, report_type,
                 days_since_onset, received_at, embargo_until FROM diagnosis_keys
              UNION ALL SELECT key_data, rolling_start, rolling_period, transmission_risk,
                 report_type, days_since_onset, received_at, embargo_until FROM staged_keys)
             AS stored_keys"
        } else {
            "diagnosis_keys"
        }
    }

    /// Number of stored diagnosis keys.
    pub fn count_keys(&self) -> Result<u64> {
        Ok(self.count(&format!("SELECT count(*) FROM {}", self.keys_table()))? as u64)
    }

    /// The bytes of every stored key.
    pub fn all_key_bytes(&self) -> Result<HashSet<[u8; 16]>> {
        Ok(self
            .key_bytes(&format!("SELECT key_data FROM {}", self.keys_table()))?
            .into_iter()
            .collect())
    }

    fn key_bytes(&self, sql: &str) -> Result<Vec<[u8; 16]>> {
        self.rows(sql)?
            .into_iter()
            .map(|row| match row.as_slice() {
                [Value::Blob(bytes)] => bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| AppError::Corrupt("a stored key is not 16 bytes".into())),
                _ => Err(AppError::Corrupt("a stored key is not bytes".into())),
            })
            .collect()
    }

    /// The stored record of a key, if any (a table scan).
    pub fn key_record(&self, key: &[u8; 16]) -> Result<Option<KeyRecord>> {
        let sql = format!(
            "SELECT rolling_start, rolling_period, report_type, days_since_onset,
                 embargo_until FROM {} WHERE key_data = $1 LIMIT 1",
            self.keys_table()
        );
        match &self.0 {
            Database::Sqlite(connection) => Ok(connection
                .prepare_cached(&sql)?
                .query_row([key.as_slice()], |row| {
                    Ok(KeyRecord {
                        rolling_start: row.get(0)?,
                        rolling_period: row.get(1)?,
                        report_type: row.get(2)?,
                        days_since_onset: row.get(3)?,
                        embargo_until: UnixSeconds::new(row.get(4)?),
                    })
                })
                .optional()?),
            Database::Postgres { client, runtime } => {
                let key = key.as_slice();
                let row = wait(runtime.handle(), client.query_opt(&sql, &[&key]))?;
                Ok(row.map(|row| KeyRecord {
                    rolling_start: row.get::<_, i64>(0) as u32,
                    rolling_period: row.get::<_, i64>(1) as u32,
                    report_type: row.get(2),
                    days_since_onset: row.get(3),
                    embargo_until: UnixSeconds::new(row.get::<_, i64>(4) as u64),
                }))
            }
        }
    }
}

/// Column `i` of a PostgreSQL row, by its type.
fn postgres_value(row: &tokio_postgres::Row, i: usize) -> Result<Value> {
    use tokio_postgres::types::Type;
    let ty = row.columns()[i].type_();
    let value = if *ty == Type::INT2 {
        row.get::<_, Option<i16>>(i)
            .map(|v| Value::Integer(v.into()))
    } else if *ty == Type::INT4 {
        row.get::<_, Option<i32>>(i)
            .map(|v| Value::Integer(v.into()))
    } else if *ty == Type::INT8 {
        row.get::<_, Option<i64>>(i).map(Value::Integer)
    } else if [Type::TEXT, Type::VARCHAR, Type::NAME].contains(ty) {
        row.get::<_, Option<String>>(i).map(Value::Text)
    } else if *ty == Type::BYTEA {
        row.get::<_, Option<Vec<u8>>>(i).map(Value::Blob)
    } else if *ty == Type::FLOAT8 {
        row.get::<_, Option<f64>>(i)
            .map(|v| Value::Text(v.to_string()))
    } else {
        return Err(AppError::Corrupt(format!("column type {ty} not read")));
    };
    Ok(value.unwrap_or(Value::Null))
}
