//! Reading a django-minimal-log database: a SQLite file (rusqlite, read
//! only) or PostgreSQL (tokio-postgres, TLS by `sslmode`). Entries are read in
//! pages by id, so a large table is never held in memory at once.

use super::map;
use anyhow::{Context, bail};
use rusqlite::OpenFlags;
use rusqlite::types::Value;
use std::path::Path;
use std::time::Duration;

pub const KEYS: &str = "minimal_log_host_minimallogkey";
pub const ENTRIES: &str = "minimal_log_host_minimallogentry";
/// Django's user table; a project with its own user model may have none,
/// and then creators and solvers are unknown.
pub const USERS: &str = "auth_user";

#[derive(Clone, Debug)]
pub struct KeyRow {
    pub id: i64,
    pub description: String,
    /// The key's secret (`value`).
    pub secret: String,
    pub active: bool,
    pub added_ms: i64,
    /// The creator's user name.
    pub adder: Option<String>,
}

#[derive(Clone, Debug)]
pub struct EntryRow {
    pub id: i64,
    /// The entry's text (`description`).
    pub text: String,
    pub status: String,
    pub added_ms: i64,
    pub from_ip: Option<String>,
    /// NULL once the key was deleted.
    pub key_id: Option<i64>,
    pub resolved_ms: Option<i64>,
    /// The resolver's user name (NULL once that user was deleted).
    pub solver: Option<String>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub keys: u64,
    pub entries: u64,
    pub resolved: u64,
}

pub enum Source {
    Sqlite {
        conn: rusqlite::Connection,
        users: bool,
        path: String,
    },
    Postgres {
        client: tokio_postgres::Client,
        users: bool,
        /// Ends with the connection.
        _task: tokio::task::JoinHandle<()>,
    },
}

/// Whether `db` names a PostgreSQL database rather than a file.
pub fn is_postgres(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// The URL with its password replaced, for messages.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let masked = match rest.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    // A password may come as a parameter too (`?password=…`).
    let Some((base, query)) = masked.split_once('?') else {
        return masked;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some(("password", _)) => "password=***".to_owned(),
            _ => p.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

fn not_dml(what: &str, missing: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} is not a django-minimal-log database: it has no table {missing}. Give --db the \
         database of the Django project that ran django-minimal-log (its settings.DATABASES), \
         after `python manage.py migrate minimal_log_host`"
    )
}

impl Source {
    pub async fn open(db: &str) -> anyhow::Result<Source> {
        if is_postgres(db) {
            Self::open_postgres(db).await
        } else {
            Self::open_sqlite(db.strip_prefix("sqlite://").unwrap_or(db))
        }
    }

    fn open_sqlite(path: &str) -> anyhow::Result<Source> {
        let file = Path::new(path);
        if !file.is_file() {
            bail!(
                "{path}: no such file. Give --db the Django project's SQLite file \
                 (settings.DATABASES['default']['NAME'], often db.sqlite3) or a \
                 postgres://user:password@host:port/dbname URL"
            );
        }
        let conn = rusqlite::Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {path} (read only)"))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let tables = {
            let mut stmt = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::NotADatabase) => anyhow::anyhow!(
                        "{path} is not a SQLite database. Give --db the Django project's SQLite \
                         file, or a postgres:// URL"
                    ),
                    _ => anyhow::Error::new(e).context(format!("reading {path}")),
                })?;
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("reading the tables of {path}"))?
        };
        for t in [KEYS, ENTRIES] {
            if !tables.iter().any(|n| n == t) {
                return Err(not_dml(path, t));
            }
        }
        let users = tables.iter().any(|n| n == USERS);
        Ok(Source::Sqlite {
            conn,
            users,
            path: path.to_owned(),
        })
    }

    async fn open_postgres(url: &str) -> anyhow::Result<Source> {
        let shown = shown_url(url);
        let options = super::tls::options(url).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        let hint = if options.tls {
            "check the URL (postgres://user:password@host:port/dbname?sslmode=verify-full), \
             that the server runs and accepts this user from here (pg_hba.conf), and that its \
             certificate is signed by the system's roots or by the CA in sslrootcert=FILE \
             and names the host"
        } else {
            "check the URL (postgres://user:password@host:port/dbname), that the server runs \
             and accepts this user from here (pg_hba.conf); a server that takes TLS only \
             needs ?sslmode=verify-full, with sslrootcert=FILE for a CA the system does not \
             know"
        };
        let connector = super::tls::Rustls::new(options.root_cert.as_deref())
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        let (client, connection) = tokio::time::timeout(
            Duration::from_secs(15),
            tokio_postgres::connect(&options.url, connector),
        )
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach Postgres at {shown} in 15 s: {hint}"))?
        .map_err(|e| {
            // The server's own words (a DbError) and TLS's are the error's sources.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                why.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            anyhow::anyhow!("cannot connect to Postgres at {shown}: {why}: {hint}")
        })?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("the Postgres connection ended: {e}");
            }
        });
        let exists = async |table: &str| -> anyhow::Result<bool> {
            let row = client
                .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&table])
                .await
                .with_context(|| format!("looking up table {table} at {shown}"))?;
            Ok(row.get::<_, bool>(0))
        };
        for t in [KEYS, ENTRIES] {
            if !exists(t).await? {
                return Err(not_dml(&shown, t));
            }
        }
        let users = exists(USERS).await?;
        Ok(Source::Postgres {
            client,
            users,
            _task: task,
        })
    }

    /// Whether user names can be read (`auth_user` exists).
    pub fn has_users(&self) -> bool {
        match self {
            Source::Sqlite { users, .. } | Source::Postgres { users, .. } => *users,
        }
    }

    pub async fn totals(&self) -> anyhow::Result<Totals> {
        let sql = format!(
            "SELECT (SELECT count(*) FROM {KEYS}), (SELECT count(*) FROM {ENTRIES}), \
             (SELECT count(*) FROM {ENTRIES} WHERE resolved IS NOT NULL)"
        );
        let (k, e, r): (i64, i64, i64) = match self {
            Source::Sqlite { conn, .. } => {
                conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            }
            Source::Postgres { client, .. } => {
                let row = client.query_one(&sql, &[]).await?;
                (row.get(0), row.get(1), row.get(2))
            }
        };
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Totals {
            keys: n(k),
            entries: n(e),
            resolved: n(r),
        })
    }

    /// The join and the column that name the user `column` points at
    /// (`NULL` without Django's user table).
    fn user_name(&self, column: &str) -> (String, &'static str) {
        if self.has_users() {
            (
                format!("LEFT JOIN {USERS} u ON u.id = {column}"),
                "u.username",
            )
        } else {
            (String::new(), "NULL")
        }
    }

    pub async fn keys(&self) -> anyhow::Result<Vec<KeyRow>> {
        let (join, adder) = self.user_name("k.adder_id");
        match self {
            Source::Sqlite { conn, path, .. } => {
                let sql = format!(
                    "SELECT k.id, k.description, k.value, k.active, k.added, {adder} \
                     FROM {KEYS} k {join} ORDER BY k.id"
                );
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Value>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, description, secret, active, added, adder) =
                        row.with_context(|| format!("reading the keys of {path}"))?;
                    out.push(KeyRow {
                        id,
                        description,
                        secret,
                        active: active != 0,
                        added_ms: sqlite_time(&added, "key", id, "added")?
                            .context("a key without its `added` time")?,
                        adder,
                    });
                }
                Ok(out)
            }
            Source::Postgres { client, .. } => {
                let sql = format!(
                    "SELECT k.id::bigint, k.description::text, k.value::text, k.active, \
                     floor(extract(epoch FROM k.added) * 1000)::bigint, {adder}::text \
                     FROM {KEYS} k {join} ORDER BY k.id"
                );
                let rows = client.query(&sql, &[]).await.context("reading the keys")?;
                // `try_get`: a NULL where the schema has none is an error, not a panic.
                rows.iter()
                    .map(|r| {
                        Ok(KeyRow {
                            id: r.try_get(0)?,
                            description: r.try_get(1)?,
                            secret: r.try_get(2)?,
                            active: r.try_get(3)?,
                            added_ms: r.try_get(4)?,
                            adder: r.try_get(5)?,
                        })
                    })
                    .collect::<Result<_, tokio_postgres::Error>>()
                    .context("reading the keys")
            }
        }
    }

    /// Up to `limit` entries with an id above `after`, by id.
    pub async fn entries_after(&self, after: i64, limit: i64) -> anyhow::Result<Vec<EntryRow>> {
        let (join, solver) = self.user_name("e.solver_id");
        match self {
            Source::Sqlite { conn, path, .. } => {
                let sql = format!(
                    "SELECT e.id, e.description, e.status, e.added, e.from_ip, e.key_id, \
                     e.resolved, {solver} FROM {ENTRIES} e {join} \
                     WHERE e.id > ?1 ORDER BY e.id LIMIT ?2"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map([after, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Value>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, Value>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, text, status, added, from_ip, key_id, resolved, solver) =
                        row.with_context(|| format!("reading the entries of {path}"))?;
                    out.push(EntryRow {
                        id,
                        text,
                        status: status.unwrap_or_default(),
                        added_ms: sqlite_time(&added, "entry", id, "added")?
                            .context("an entry without its `added` time")?,
                        from_ip,
                        key_id,
                        resolved_ms: sqlite_time(&resolved, "entry", id, "resolved")?,
                        solver,
                    });
                }
                Ok(out)
            }
            Source::Postgres { client, .. } => {
                let sql = format!(
                    "SELECT e.id::bigint, e.description::text, e.status::text, \
                     floor(extract(epoch FROM e.added) * 1000)::bigint, e.from_ip::text, \
                     e.key_id::bigint, floor(extract(epoch FROM e.resolved) * 1000)::bigint, \
                     {solver}::text FROM {ENTRIES} e {join} \
                     WHERE e.id > $1::bigint ORDER BY e.id LIMIT $2::bigint"
                );
                let rows = client
                    .query(&sql, &[&after, &limit])
                    .await
                    .context("reading the entries")?;
                rows.iter()
                    .map(|r| {
                        Ok(EntryRow {
                            id: r.try_get(0)?,
                            text: r.try_get(1)?,
                            status: r.try_get::<_, Option<String>>(2)?.unwrap_or_default(),
                            added_ms: r.try_get(3)?,
                            from_ip: r.try_get(4)?,
                            key_id: r.try_get(5)?,
                            resolved_ms: r.try_get(6)?,
                            solver: r.try_get(7)?,
                        })
                    })
                    .collect::<Result<_, tokio_postgres::Error>>()
                    .context("reading the entries")
            }
        }
    }
}

/// A datetime column of a SQLite row: NULL is `None`; text that is not a
/// time is an error naming the row.
fn sqlite_time(value: &Value, table: &str, id: i64, column: &str) -> anyhow::Result<Option<i64>> {
    match value {
        Value::Null => Ok(None),
        Value::Text(t) => map::sqlite_time_ms(t)
            .map(Some)
            .with_context(|| format!("{table} #{id}: `{column}` is not a time: {t:?}")),
        other => bail!("{table} #{id}: `{column}` is not a time: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            shown_url("postgres://dml:s3cret@db.example.com:5432/shop"),
            "postgres://dml:***@db.example.com:5432/shop"
        );
        assert_eq!(
            shown_url("postgres://dml@localhost/shop"),
            "postgres://dml@localhost/shop"
        );
        assert_eq!(
            shown_url("postgres://dml:pa?ss@db/shop?password=s3cret&sslmode=require"),
            "postgres://dml:***@db/shop?password=***&sslmode=require"
        );
    }
}
