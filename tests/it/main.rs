//! The integration tests, one crate: the fixture (`support`) compiles
//! once, and dead code in it is reported. One module per behaviour; run
//! one with `cargo test --test it relay::`, the slow and root-only ones
//! with `cargo test --test it -- --ignored`.

mod aarch64;
mod cluster;
mod confirm;
mod containers;
mod demo;
mod demo_cluster;
mod dns;
mod link_local;
mod list;
mod metrics;
mod receiver;
mod relay;
mod sender;
mod signing;
mod stdout;
mod support;
