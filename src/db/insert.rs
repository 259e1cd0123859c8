//! Multi-row INSERTs: one statement per few rows, with each dialect's casts.

use super::Dialect;

/// How a bound value reaches its column: as it is, or cast from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Param {
    Plain,
    Ts,
    Date,
    Json,
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Rows per multi-row INSERT. One statement per row cost about 90 µs a row through sqlx's
/// SQLite driver. SQLite finds a numbered parameter (`$7`) by walking the statement's list of
/// names, which made binding quadratic in a statement's parameters (12,679 anomalies of 17
/// parameters: 16 rows a statement 0.23 s, 256 rows 1.1 s); with positional `?` parameters
/// there (see [`Dialect::placeholder`]) 256 rows a statement is the fastest of 16, 64 and 256
/// (re-writing 12,721 anomalies: 0.18, 0.15 and 0.14 s). 256 rows of 18 parameters stay far below
/// both databases' limits (SQLite 32,766, PostgreSQL 65,535).
const INSERT_ROWS: usize = 256;

/// `INSERT INTO {into} VALUES (…), (…) {conflict}` for `rows`, `INSERT_ROWS` rows a statement,
/// each row's parameters typed by `params` and bound by `bind`.
///
/// The next statement is built (its text, and a copy of every bound value) while the database
/// runs the one before: both SQLite's worker thread and a PostgreSQL server execute on their
/// own, and building took about a third of the time of writing 12,721 anomalies to SQLite,
/// all of it on the waiting thread before.
pub(super) async fn insert_rows<'r, T>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    d: Dialect,
    into: &str,
    conflict: &str,
    params: &[Param],
    rows: &'r [T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'r T) -> AnyQuery<'q>,
) -> Result<(), sqlx::Error> {
    let mut chunks = rows.chunks(INSERT_ROWS);
    let Some(first) = chunks.next() else {
        return Ok(());
    };
    // Every statement but a shorter last one has the first one's text.
    let full = statement(d, into, conflict, params, first.len());
    let build = |chunk: &'r [T]| {
        let sql = if chunk.len() == first.len() {
            full.clone()
        } else {
            statement(d, into, conflict, params, chunk.len())
        };
        chunk
            .iter()
            .fold(sqlx::query(sqlx::AssertSqlSafe(sql)), &bind)
    };
    let mut query = build(first);
    loop {
        let mut running = std::pin::pin!(query.execute(&mut **tx));
        // Polled once, the statement is on its way to the database; the next one is built
        // before waiting for it.
        let mut finished = None;
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(r) = running.as_mut().poll(cx) {
                finished = Some(r);
            }
            std::task::Poll::Ready(())
        })
        .await;
        let next = chunks.next().map(build);
        match finished {
            Some(result) => result?,
            None => running.await?,
        };
        match next {
            Some(q) => query = q,
            None => return Ok(()),
        }
    }
}

/// The text of one multi-row INSERT of `rows` rows.
fn statement(d: Dialect, into: &str, conflict: &str, params: &[Param], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {into} VALUES ");
    for i in 0..rows {
        let base = i * params.len();
        let tuple: Vec<String> = params
            .iter()
            .enumerate()
            .map(|(j, kind)| d.placeholder(*kind, base + j + 1))
            .collect();
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&tuple.join(", "));
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(conflict);
    sql
}

impl Dialect {
    /// The placeholder for parameter `n` of a column of kind `kind`.
    fn placeholder(self, kind: Param, n: usize) -> String {
        if self == Dialect::Sqlite {
            // Positional: SQLite finds a numbered parameter (`$7`) by walking the statement's
            // list of names, which made binding a many-row INSERT quadratic in its parameters.
            return "?".to_string();
        }
        match kind {
            Param::Plain => format!("${n}"),
            Param::Ts => self.ts(n),
            Param::Date => self.date(n),
            Param::Json => self.json(n),
        }
    }
}
