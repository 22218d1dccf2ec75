//! The words for the unit's states, as the HTTP API, the console and the
//! server adapter's JSON write them. Each side maps its own generated WIT
//! types onto these enums; the words live only here. With the `serde`
//! feature they are also how the host's outbox stores states on disk (by
//! variant name).

/// The SIM card's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Sim {
    /// Ready.
    Ready,
    /// Waiting for its PIN.
    PinRequired,
    /// Locked (PUK).
    Locked,
    /// No card.
    NotInserted,
    /// The card reports an error.
    Error,
    /// Not read yet.
    Unknown,
}

impl Sim {
    /// The word for it.
    pub const fn name(self) -> &'static str {
        match self {
            Sim::Ready => "ready",
            Sim::PinRequired => "pin-required",
            Sim::Locked => "locked",
            Sim::NotInserted => "not-inserted",
            Sim::Error => "error",
            Sim::Unknown => "unknown",
        }
    }
}

/// The network the modem is registered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Network {
    /// 4G.
    Lte,
    /// 3G.
    Umts,
    /// 2G.
    Gsm,
    /// Not registered.
    None,
}

impl Network {
    /// The word for it.
    pub const fn name(self) -> &'static str {
        match self {
            Network::Lte => "lte",
            Network::Umts => "umts",
            Network::Gsm => "gsm",
            Network::None => "none",
        }
    }
}

/// A plugin's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Plugin {
    /// Running.
    Running,
    /// Restarted after a fault.
    Restarted,
    /// Quarantined after repeated faults.
    Quarantined,
}

impl Plugin {
    /// The word for it.
    pub const fn name(self) -> &'static str {
        match self {
            Plugin::Running => "running",
            Plugin::Restarted => "restarted",
            Plugin::Quarantined => "quarantined",
        }
    }
}

/// What became of a field update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Update {
    /// Installed, on probation.
    Installed,
    /// Probation passed.
    Committed,
    /// Refused; nothing changed.
    Refused,
    /// The component before it serves again.
    RolledBack,
}

impl Update {
    /// The word for it.
    pub const fn name(self) -> &'static str {
        match self {
            Update::Installed => "installed",
            Update::Committed => "committed",
            Update::Refused => "refused",
            Update::RolledBack => "rolled-back",
        }
    }
}
