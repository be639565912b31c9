//! Ids for rows written on every sign-in: time-ordered, not random.
//!
//! # Why
//!
//! A sign-in writes a session, finishes a flow and appends audit records;
//! an OpenID Connect grant writes a code and a refresh token. Each of those
//! rows is found by its id through a B-tree index. With random (version 4)
//! ids every insert lands on a random leaf page of that index, so every
//! unit dirtied one page per id, and on SQLite each dirty page is a whole
//! page written to the write-ahead log at the group's commit and again at
//! the checkpoint: most of the writer's system calls per login (issue 13,
//! `docs/benchmarks.md`). A time-ordered id (RFC 9562 §5.7, UUID version 7:
//! 48 bits of Unix milliseconds, then counter and random bits) makes the
//! inserts of one group land on the index's last page, which they share.
//! PostgreSQL's B-trees gain the same locality (fewer pages in its WAL and
//! its buffer cache).
//!
//! # Where not
//!
//! Only for ids that grant nothing: a session is presented by its token
//! (its hash is a separate column), a flow by its sealed handle or by a
//! secret that names it, a code or a refresh token by its own value.
//! Anything a client presents as proof stays fully random (`secret`,
//! [`crate::secret::PlainToken`]). A version 7 id tells when it was made,
//! to the millisecond; every id made here is of something whose creation
//! time is shown or implied anyway (a session's `created_at` on the account
//! page and `auth_time` beside `sid` in an ID token, an audit record's
//! `at`). ADR 0034.

use uuid::Uuid;

/// A new time-ordered id (UUID version 7). Ids made later in this process
/// sort after earlier ones (the 74 bits after the time are a counter,
/// seeded at random each millisecond, and random bits), so they are unique
/// here, and ids made on several nodes in the same millisecond differ in
/// their random bits; the unique indexes refuse a collision in any case.
/// Not for anything presented as proof: within a millisecond the next id
/// is the last one plus one.
pub fn time_ordered() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_distinct_and_sort_in_the_order_they_were_made() {
        let ids: Vec<Uuid> = (0..10_000).map(|_| time_ordered()).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        // Their text (what the SQLite schema stores) sorts like the ids.
        let text: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        assert!(text.windows(2).all(|w| w[0] < w[1]), "not strictly increasing");
    }
}
