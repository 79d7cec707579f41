//! The context document and its parts, with the seed's field names and defaults.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::tables::unix_seconds;

/// Everything an agent remembers about one user between invocations: a cached vault
/// snapshot, preferences, a bounded list of recent events and free-form agent memory.
///
/// `version` is the version of the stored record this value was read from (`0` for a
/// context that was never stored); the store sets it on every read and write, so it
/// always agrees with the record. `updated_at_s` (Unix seconds) is likewise stamped by
/// the store, from its clock, on every write.
///
/// Time fields carry their unit in their Rust name (`updated_at_s`, `snapshot_at_s`,
/// `timestamp_s`); their serde names are the seed's (`updated_at`, `snapshot_at`,
/// `timestamp`), so the JSON shape, the stored bytes and patch paths are unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserContext {
    /// The user's public key; the record's key.
    pub pubkey: String,
    /// Cached vault balances.
    pub vault: VaultState,
    /// The user's preferences.
    pub preferences: UserPreferences,
    /// Recent activity, newest first, at most `StoreConfig::max_recent_events` when
    /// added through `push_event`.
    pub recent_events: Vec<ContextEvent>,
    /// Free-form agent memory. Stored as JSON text because the record body is postcard,
    /// which cannot read a `serde_json::Value` back.
    #[serde(with = "crate::codec::json_value")]
    pub agent_memory: HashMap<String, serde_json::Value>,
    /// When the context was last written, in Unix seconds (the store's clock).
    /// Serialized as `updated_at`.
    #[serde(rename = "updated_at")]
    pub updated_at_s: i64,
    /// The stored record's version: 1 on create, +1 per write, 0 if never stored.
    pub version: u64,
}

impl UserContext {
    /// A fresh context for `pubkey` with default preferences, an empty vault snapshot and
    /// no events or memory, as of `now_ms` (ms since the epoch; `updated_at_s` is in
    /// seconds). Its version is 0: putting it creates the record, and fails with a
    /// version conflict if one already exists.
    ///
    /// Unlike the seed's `init_user_context`, which started at version 1, version 0 marks
    /// "not stored yet", so two processes initialising the same user cannot both win.
    pub fn new(pubkey: impl Into<String>, now_ms: u64) -> Self {
        UserContext {
            pubkey: pubkey.into(),
            vault: VaultState::default(),
            preferences: UserPreferences::default(),
            recent_events: Vec::new(),
            agent_memory: HashMap::new(),
            updated_at_s: unix_seconds(now_ms),
            version: 0,
        }
    }
}

/// A cached snapshot of the user's vault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultState {
    /// Cred balance (lamports).
    pub cred_balance: u64,
    /// OXO balance.
    pub oxo_balance: u64,
    /// Total amount staked.
    pub total_staked: u64,
    /// Yield accrued and not yet claimed.
    pub pending_yield: u64,
    /// Number of open positions.
    pub active_positions: u16,
    /// When this snapshot was taken (Unix seconds, 0 = never). Serialized as
    /// `snapshot_at`.
    #[serde(rename = "snapshot_at")]
    pub snapshot_at_s: i64,
}

/// What the user wants the agent to do on their behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPreferences {
    /// Stake captured Cred automatically. Default `true`.
    pub auto_stake: bool,
    /// Stake duration to use when none is given. Default 90 days.
    pub default_duration_days: u16,
    /// Compound yield automatically. Default `true`.
    pub auto_compound: bool,
    /// Yield (lamports) from which auto-compound runs. Default 10 Cred (10^10).
    pub compound_threshold: u64,
    /// Risk tolerance for recommendations. Default `"balanced"`.
    pub risk_tolerance: String,
    /// Notification settings.
    pub notifications: NotificationPrefs,
}

impl Default for UserPreferences {
    fn default() -> Self {
        UserPreferences {
            auto_stake: true,
            default_duration_days: 90,
            auto_compound: true,
            compound_threshold: 10_000_000_000,
            risk_tolerance: "balanced".to_owned(),
            notifications: NotificationPrefs::default(),
        }
    }
}

/// Which events notify the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationPrefs {
    /// On a capture. Default `true`.
    pub on_capture: bool,
    /// On a stake. Default `false`.
    pub on_stake: bool,
    /// On yield. Default `true`.
    pub on_yield: bool,
    /// On an unlock. Default `true`.
    pub on_unlock: bool,
    /// Smallest amount (Cred lamports) worth a notification. Default 1 Cred (10^9).
    pub min_notify_amount: u64,
}

impl Default for NotificationPrefs {
    fn default() -> Self {
        NotificationPrefs {
            on_capture: true,
            on_stake: false,
            on_yield: true,
            on_unlock: true,
            min_notify_amount: 1_000_000_000,
        }
    }
}

/// One entry of a context's recent activity. Build one with [`ContextEvent::new`] (and
/// [`with_amount`](ContextEvent::with_amount)), or from [`Default`] with struct update
/// syntax.
///
/// ```
/// use edgestate::ContextEvent;
///
/// let event = ContextEvent::new("capture", 1_700_000_000, "coffee").with_amount(450);
/// assert_eq!(event.amount, Some(450));
/// let other = ContextEvent { summary: "tea".into(), ..event.clone() };
/// assert_eq!(other.timestamp_s, 1_700_000_000);
/// assert_eq!(ContextEvent::default().amount, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEvent {
    /// What happened (`"capture"`, `"stake"`, ...).
    pub event_type: String,
    /// When it happened (Unix seconds). Serialized as `timestamp`.
    #[serde(rename = "timestamp")]
    pub timestamp_s: i64,
    /// A human-readable line.
    pub summary: String,
    /// The amount involved, if any.
    pub amount: Option<u64>,
}

impl ContextEvent {
    /// An event of `event_type` at `timestamp_s` (Unix seconds) described by `summary`,
    /// with no amount.
    pub fn new(
        event_type: impl Into<String>,
        timestamp_s: i64,
        summary: impl Into<String>,
    ) -> Self {
        ContextEvent {
            event_type: event_type.into(),
            timestamp_s,
            summary: summary.into(),
            amount: None,
        }
    }

    /// The same event with `amount` as the amount involved.
    #[must_use]
    pub fn with_amount(mut self, amount: u64) -> Self {
        self.amount = Some(amount);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_seed() {
        let p = UserPreferences::default();
        assert!(p.auto_stake && p.auto_compound);
        assert_eq!(p.default_duration_days, 90);
        assert_eq!(p.compound_threshold, 10_000_000_000);
        assert_eq!(p.risk_tolerance, "balanced");
        assert!(!p.notifications.on_stake);
        assert_eq!(p.notifications.min_notify_amount, 1_000_000_000);
    }

    #[test]
    fn new_context_is_unstored_and_stamped_in_seconds() {
        let ctx = UserContext::new("u", 1_700_000_000_999);
        assert_eq!(ctx.version, 0);
        assert_eq!(ctx.updated_at_s, 1_700_000_000);
        assert!(ctx.recent_events.is_empty() && ctx.agent_memory.is_empty());
    }

    #[test]
    fn postcard_round_trip_keeps_agent_memory() {
        let mut ctx = UserContext::new("u", 0);
        ctx.agent_memory
            .insert("k".into(), serde_json::json!({"a": [1, 2.5, null]}));
        let bytes = crate::codec::to_postcard("ctx", &ctx).expect("encode");
        let back: UserContext = crate::codec::from_postcard("t", "u", &bytes).expect("decode");
        assert_eq!(back, ctx);
    }

    #[test]
    fn time_fields_keep_their_serde_names() {
        let mut ctx = UserContext::new("u", 1_700_000_000_000);
        ctx.vault.snapshot_at_s = 5;
        ctx.recent_events
            .push(ContextEvent::new("capture", 7, "coffee").with_amount(1));
        let json = serde_json::to_value(&ctx).expect("json");
        assert_eq!(json["updated_at"], 1_700_000_000);
        assert_eq!(json["vault"]["snapshot_at"], 5);
        assert_eq!(json["recent_events"][0]["timestamp"], 7);
        assert!(json.get("updated_at_s").is_none());
    }
}
