//! Inserts a unit of work does not need an answer from, sent with the
//! unit's next call on SQLite's writer instead of in a call of their own
//! (ADR 0015, third amendment).
//!
//! # Why
//!
//! Every statement sent to SQLite's single writer is a hand-off to the
//! connection's thread and a wait for the member's task to send the next
//! one; the statement log of the login and grant benchmarks showed the
//! writer bound by those calls, not by SQLite's work in them (about 27 µs
//! of SQLite and 46 µs of waiting per call). A unit that signs someone in
//! or issues a grant inserts a row it never reads back (the session, the
//! authorization code, the next refresh token) and then only queues its
//! audit record for the commit. Such an insert waits here and goes in the
//! same call as the unit's first audit record (and, when the member parks,
//! its release): one call fewer per unit.
//!
//! # How
//!
//! A [`Deferred`] is an `INSERT` with `$1`..`$n` and its values, owned.
//! [`statement`] joins several of them (and optionally the audit record's
//! `INSERT` and the release) into one multi-statement text whose
//! placeholders are renumbered one after the other, and [`bind`] binds the
//! values in the same order; SQLite runs the statements in order and stops
//! at the first that fails. The joined texts are few (one per combination
//! of kinds) and kept for the life of the process, so the driver's
//! statement cache keeps them prepared. [`joined`] does the same for any
//! statements a call should carry together (a right code's admission in
//! `throttle`: the run ended, then the flow's count).
//!
//! A write whose outcome the unit does need (a flow's completion, a
//! passkey's counter update) can wait here too when SQLite itself checks it
//! and refuses the unit if it changed no row (`crate::refusals`, ADR 0035).
//!
//! On PostgreSQL an insert is made at once with the same text and values
//! ([`crate::tx::SqlTx::write_later`]); only SQLite has a single writer
//! whose calls are worth saving.

use std::sync::Mutex;

/// One bound value of a deferred insert.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Bool(bool),
    Text(String),
    /// A text column's `NULL`.
    NullText,
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Value::NullText, Value::Text)
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Value::NullText, |s| Value::Text(s.to_owned()))
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

/// An `INSERT` (placeholders `$1`..`$n`, each used in order, `n` =
/// `values.len()`) whose outcome the unit does not need before its commit.
#[derive(Clone, Debug)]
pub(crate) struct Deferred {
    pub(crate) sql: &'static str,
    pub(crate) values: Vec<Value>,
}

/// What follows the deferred inserts in one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// Nothing: the inserts alone (an operation of the unit needs them in
    /// place first).
    Nothing,
    /// The audit record's `INSERT` (its placeholders after the inserts').
    Record,
    /// The audit record's `INSERT`, then the unit's release into its group
    /// (`group_commit::RELEASE_AND_REOPEN`).
    RecordAndRelease,
}

/// The text of one call: `inserts` in order, then `then`, placeholders
/// numbered one after the other ([`joined`]).
pub(crate) fn statement(inserts: &[Deferred], then: Then) -> &'static str {
    for d in inserts {
        debug_assert_eq!(
            highest_placeholder(d.sql),
            d.values.len(),
            "a deferred insert binds one value per placeholder: {}",
            d.sql
        );
    }
    joined(inserts.iter().map(|d| d.sql), then)
}

/// Statements (each numbering its placeholders from `$1`, each used) joined
/// into the text of one call, then `then`, with every statement's
/// placeholders after the previous ones'. Built once per combination and
/// kept for the life of the process (a handful: one per kind of unit), so
/// the driver keeps each prepared; found again without allocating.
pub(crate) fn joined(texts: impl Iterator<Item = &'static str> + Clone, then: Then) -> &'static str {
    struct Joined {
        texts: Vec<&'static str>,
        then: Then,
        sql: &'static str,
    }
    static JOINED: Mutex<Vec<Joined>> = Mutex::new(Vec::new());
    let mut known = JOINED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(j) = known
        .iter()
        .find(|j| j.then == then && j.texts.iter().copied().eq(texts.clone()))
    {
        return j.sql;
    }
    let texts: Vec<&'static str> = texts.collect();
    let sql: &'static str = Box::leak(join(&texts, then).into_boxed_str());
    known.push(Joined { texts, then, sql });
    sql
}

fn join(texts: &[&'static str], then: Then) -> String {
    let mut parts = Vec::new();
    let mut offset = 0;
    for text in texts {
        parts.push(shifted(text, offset));
        offset += highest_placeholder(text);
    }
    if then != Then::Nothing {
        parts.push(shifted(crate::audit::INSERT, offset));
    }
    if then == Then::RecordAndRelease {
        parts.push(crate::group_commit::RELEASE_AND_REOPEN.to_owned());
    }
    parts.join("; ")
}

/// `sql` with each placeholder `$k` written `$(k + by)`. Our deferred
/// statements hold no `$` other than placeholders (their only string
/// literals are refusal names, `crate::refusals`).
pub(crate) fn shifted(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let digits = rest[i + 1..].bytes().take_while(u8::is_ascii_digit).count();
        match rest[i + 1..i + 1 + digits].parse::<usize>() {
            Ok(k) => out.push_str(&format!("${}", k + by)),
            Err(_) => out.push('$'),
        }
        rest = &rest[i + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// The highest `$k` in `sql` (0 if none).
pub(crate) fn highest_placeholder(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            rest[..digits].parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Binds `values` to `q` in order, for either engine.
pub(crate) fn bind<'q, DB>(
    values: impl IntoIterator<Item = &'q Value>,
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for v in values {
        q = match v {
            Value::Int(i) => q.bind(*i),
            Value::Bool(b) => q.bind(*b),
            Value::Text(s) => q.bind(s.as_str()),
            Value::NullText => q.bind(None::<&str>),
            Value::Blob(b) => q.bind(b.as_slice()),
        };
    }
    q
}

/// The values of all `inserts`, in the order [`statement`] numbers them.
pub(crate) fn values(inserts: &[Deferred]) -> impl Iterator<Item = &Value> {
    inserts.iter().flat_map(|d| d.values.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(sql: &'static str, n: usize) -> Deferred {
        Deferred {
            sql,
            values: vec![Value::Int(0); n],
        }
    }

    #[test]
    fn placeholders_are_numbered_one_after_the_other() {
        let a = d("INSERT INTO a (x, y) VALUES ($1, $2)", 2);
        let b = d("INSERT INTO b (x, y, z) VALUES ($1, $2, $3)", 3);
        assert_eq!(
            statement(&[a.clone(), b.clone()], Then::Nothing),
            "INSERT INTO a (x, y) VALUES ($1, $2); INSERT INTO b (x, y, z) VALUES ($3, $4, $5)"
        );
        let with_record = statement(std::slice::from_ref(&a), Then::RecordAndRelease);
        assert_eq!(
            with_record,
            format!(
                "INSERT INTO a (x, y) VALUES ($1, $2); {}; {}",
                shifted(crate::audit::INSERT, 2),
                crate::group_commit::RELEASE_AND_REOPEN
            )
        );
        assert!(
            with_record.contains("$14)"),
            "the record's twelve after the insert's two"
        );
        // No insert: the record alone, and the record with the release.
        assert_eq!(statement(&[], Then::Record), crate::audit::INSERT);
        assert_eq!(
            statement(&[], Then::RecordAndRelease),
            format!("{}; {}", crate::audit::INSERT, crate::group_commit::RELEASE_AND_REOPEN)
        );
        // Built once: the same text for the same combination.
        assert!(std::ptr::eq(statement(&[a], Then::RecordAndRelease), with_record));
    }

    #[test]
    fn the_highest_placeholder_is_found() {
        // Each real insert is checked against its values when its joined
        // text is built (a debug assertion the conformance suite runs).
        assert_eq!(highest_placeholder(crate::audit::INSERT), 12);
        assert_eq!(highest_placeholder(crate::sessions::INSERT_SESSION), 18);
        assert_eq!(highest_placeholder("no placeholders"), 0);
    }

    #[test]
    fn shifting_leaves_two_digit_placeholders_whole() {
        assert_eq!(shifted("VALUES ($9, $10, $11)", 18), "VALUES ($27, $28, $29)");
        assert_eq!(shifted("no placeholders", 3), "no placeholders");
    }
}
