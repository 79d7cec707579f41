//! Drop-in for the agent SDK seed (`loop_agent_sdk`): its `state` and `dynamo` modules
//! with the seed's types, field names, JSON, trait, error variants, configuration
//! structs and async store methods, on a local edgestate file.
//!
//! The one-line change: import from `edgestate::compat::loop_agent_sdk` instead of
//! `loop_agent_sdk`. `DynamoStateStore::new().await` then opens the file named by
//! `DYNAMO_TABLE` (`loop-agent-state.edgestate` by default) instead of connecting to
//! DynamoDB; everything after it is the seed's code, unchanged:
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let table = dir.path().join("agent.edgestate").display().to_string();
//! // was: use loop_agent_sdk::{dynamo::{DynamoConfig, DynamoStateStore}, state::StateStore};
//! use edgestate::compat::loop_agent_sdk::{dynamo::{DynamoConfig, DynamoStateStore}, state::StateStore};
//!
//! let config = DynamoConfig { table_name: table, ..DynamoConfig::default() };
//! let store = DynamoStateStore::with_config(config).await?;
//! store.link_card("fp_1", "alice", "4242").await?;
//! assert_eq!(store.lookup_user_by_card("fp_1").await?.map(|c| c.user_pubkey), Some("alice".into()));
//! let ctx = store.get_or_init("alice")?;
//! assert_eq!(ctx.version, 1);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! What differs from the seed is listed in the table of [`compat`](crate::compat).

pub mod dynamo;
pub mod state;

pub use dynamo::{
    CardMapping, DynamoConfig, DynamoStateStore, PendingCapture, PendingLocation, SessionKeyData,
};
pub use state::{
    init_user_context, ContextEvent, DynamoStateConfig, NotificationPrefs, StateError, StateStore,
    UserContext, UserPreferences, VaultState,
};
