//! Test-only crash points. `CROSSKEY_FAILPOINTS=name[,name...]` makes the process exit at
//! once when it reaches a named point, as if it were killed there. Crash tests use this
//! to prove that no AWS resource is created twice. Unset (the normal case), a point
//! costs one lookup in an empty set.

use std::collections::HashSet;
use std::sync::OnceLock;

/// The exit code of a process stopped by a failpoint.
pub const EXIT_CODE: i32 = 86;

/// Right after CreateKey returned, before the key is recorded in status.
pub const SHARED_KEY_AFTER_CREATE: &str = "shared-key-after-create-key";
/// Before a SharedKey reconcile writes its status.
pub const SHARED_KEY_BEFORE_STATUS: &str = "shared-key-before-status";
/// Right after CreateBackupVault returned, before anything is recorded.
pub const VAULT_AFTER_CREATE: &str = "vault-after-create-vault";
/// Right after an inline role policy was put, before it is recorded in status.
pub const VAULT_AFTER_ROLE_GRANT: &str = "vault-after-role-grant";
/// Before a CrossAccountVault reconcile writes its status.
pub const VAULT_BEFORE_STATUS: &str = "vault-before-status";

/// Every failpoint, for tests that go through them all.
pub const ALL: &[&str] = &[
    SHARED_KEY_AFTER_CREATE,
    SHARED_KEY_BEFORE_STATUS,
    VAULT_AFTER_CREATE,
    VAULT_AFTER_ROLE_GRANT,
    VAULT_BEFORE_STATUS,
];

fn armed() -> &'static HashSet<String> {
    static ARMED: OnceLock<HashSet<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("CROSSKEY_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// Exits the process when `name` is armed.
pub fn hit(name: &str) {
    if armed().contains(name) {
        tracing::error!(failpoint = name, "failpoint reached: exiting");
        std::process::exit(EXIT_CODE);
    }
}
