//! The process's memory allocator: jemalloc, with background purging.
//!
//! Why not the system allocator: after a burst of connections (admission
//! control caps them, issue 12), glibc malloc kept the freed per-connection
//! buffers in its arenas, so the server's resident size stayed at about
//! 3.5× idle long after the load was gone (13 MiB idle, about 50 MiB after
//! three bursts; `docs/benchmarks.md`). `M_TRIM_THRESHOLD`/`M_ARENA_MAX`
//! tunables did not change that, and mimalloc kept more. jemalloc returns
//! freed pages to the kernel on a decay schedule, and with background
//! threads it does so even when the process is idle and no allocation would
//! otherwise trigger the purge.
//!
//! The options (`background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0`)
//! are compiled in from `.cargo/config.toml` (`JEMALLOC_SYS_WITH_MALLOC_CONF`),
//! and `MALLOC_CONF`-style tuning is still possible at run time through the
//! `_RJEM_MALLOC_CONF` environment variable. ADR 0018 records the decision.
//!
//! Declaring the global allocator in the library (rather than in `main.rs`)
//! means every binary that embeds the server — `signet`, `signet-bench`, the
//! integration tests — runs on the same allocator that production does.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
