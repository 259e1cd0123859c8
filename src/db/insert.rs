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
pub(super) async fn insert_rows<'r, T>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    d: Dialect,
    into: &str,
    conflict: &str,
    params: &[Param],
    rows: &'r [T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'r T) -> AnyQuery<'q>,
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut sql = format!("INSERT INTO {into} VALUES ");
        for (i, _) in chunk.iter().enumerate() {
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
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
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
