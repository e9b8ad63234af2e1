//! The checked-in `crds/` must be exactly what `crosskey crd` prints.
#![allow(clippy::panic, clippy::unwrap_used)] // test code: failing loudly is the point

use std::process::Command;

#[test]
fn checked_in_crds_match_the_generator() {
    let output = Command::new(env!("CARGO_BIN_EXE_crosskey"))
        .arg("crd")
        .output()
        .expect("crosskey crd runs");
    assert!(
        output.status.success(),
        "crosskey crd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).expect("UTF-8 YAML");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/crosskey.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/crosskey.yaml exists");
    assert!(
        generated == committed,
        "crds/crosskey.yaml is stale: run `make crds` and commit the result"
    );
}

#[test]
fn crd_output_lists_the_three_kinds_with_short_names() {
    let output = Command::new(env!("CARGO_BIN_EXE_crosskey"))
        .arg("crd")
        .output()
        .expect("crosskey crd runs");
    let yaml = String::from_utf8(output.stdout).expect("UTF-8 YAML");
    for (name, short) in [
        ("awsaccounts.crosskey.dev", "awsacct"),
        ("sharedkeys.crosskey.dev", "sk"),
        ("crossaccountvaults.crosskey.dev", "xav"),
    ] {
        assert!(yaml.contains(&format!("name: {name}")), "missing {name}");
        assert!(
            yaml.contains(&format!("- {short}\n")),
            "missing short name {short}"
        );
    }
}
