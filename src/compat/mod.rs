//! The seeds' trait shapes and method names, so code written against them ports by
//! changing its constructor. Each module says what differs and why (the seeds' bugs are
//! fixed, not copied).
//!
//! | seed | here |
//! |---|---|
//! | agent SDK `StateStore` + DynamoDB store | [`loop_agent`] |
//! | agent runtime snapshot/working-memory store | [`agent_runtime`] |
//! | solver key/value store + typed wrappers | [`solver`], [`byte_store`] |
//! | trading framework `rustrade_core::StateStore` | `rustrade` (cargo feature `rustrade`) |

pub mod agent_runtime;
pub mod byte_store;
#[cfg(feature = "seeds")]
pub mod enact_core;
pub mod loop_agent;
pub mod loop_agent_sdk;
#[cfg(feature = "rustrade")]
pub mod rustrade;
mod seed_data;
pub mod solver;
#[cfg(feature = "seeds")]
pub mod solver_state;

pub use byte_store::{ByteStore, FillStore, OrderStore, PrefixStore};
