//! Reads on SQLite that return many rows (a page of messages) through rusqlite, run right
//! where they are asked for, instead of through sqlx.
//!
//! Why: sqlx copies every column of every row on its connection's thread (through glibc's
//! malloc: 12 % of a `ListMessages(50)` in `perf`), hands the rows over with a context
//! switch, and sea-orm then finds each column by name. Here each column is taken by index
//! straight from SQLite's buffers, on the calling task's thread: handing the read to
//! tokio's blocking pool cost two context switches a page, a fifth of `ListMessages(50)`'s
//! CPU (`perf`: 203–216 µs per call with the hop, 144–168 µs without, server on one core).
//!
//! Running on an async worker is sound because such a read is short and bounded: one
//! indexed range of at most a page (≤ 200 rows) from a database that is normally in the
//! page cache, ~30–100 µs — within tokio's guidance for work between awaits — and a reader
//! never waits for the writer in WAL mode. A page read from a cold disk does hold its worker
//! for the I/O; the embedded default is one machine's database, where that is rare.
//!
//! The rows are decoded into the same sea-orm models the rest of the store uses, so the
//! mapping to domain types stays in one place (`convert`); only "column i is field f" is
//! written here, and tests read the same rows both ways and compare.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, Row};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Connections kept open between reads (more are opened when more reads run at once).
const MAX_IDLE: usize = 8;

/// Read-only connections to the database file, reused between reads.
pub(in crate::store::sql) struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteReader {
    pub(in crate::store::sql) fn new(path: &Path) -> Arc<Self> {
        Arc::new(Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `read` on an idle connection (opening one if none is idle), on this thread.
    pub(in crate::store::sql) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.take().map_err(Error::from)?;
        let result = read(&conn);
        self.give_back(conn);
        result.map_err(Error::from)
    }

    fn take(&self) -> rusqlite::Result<Connection> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
    }
}

/// Column `i` as a UUID (sqlx stores them as 16-byte blobs).
pub(in crate::store::sql) fn uuid(row: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    row.get::<_, [u8; 16]>(i).map(Uuid::from_bytes)
}

pub(in crate::store::sql) fn optional_uuid(
    row: &Row<'_>,
    i: usize,
) -> rusqlite::Result<Option<Uuid>> {
    Ok(row.get::<_, Option<[u8; 16]>>(i)?.map(Uuid::from_bytes))
}

/// Column `i` as a time (sqlx stores them as RFC 3339 text).
pub(in crate::store::sql) fn time(row: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text = row.get_ref(i)?.as_str()?;
    parse_time(i, text)
}

pub(in crate::store::sql) fn optional_time(
    row: &Row<'_>,
    i: usize,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get_ref(i)?.as_str_or_null()? {
        Some(text) => parse_time(i, text).map(Some),
        None => Ok(None),
    }
}

fn parse_time(i: usize, text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.to_utc())
        .map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(err))
        })
}
