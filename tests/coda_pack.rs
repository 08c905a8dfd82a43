//! The Pack in `examples/coda-pack/` cannot drift from the write-back contract: it names each
//! route `schema::writeback::TARGETS` declares, sends exactly each target's staff-owned fields
//! (in the contract's order), authenticates with the one system-wide header token, and pins
//! the SDK it was written against.

use std::path::PathBuf;

use august_schema::writeback::TARGETS;

fn pack_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/coda-pack").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The route's fixed part, `/api/intake/` for `/api/intake/{appointment_id}`.
fn route_prefix(route: &str) -> &str {
    route.split('{').next().unwrap_or(route)
}

/// The names of the `field("…")` declarations in `block`, in order.
fn declared_fields(block: &str) -> Vec<&str> {
    block.split("field(\"").skip(1).filter_map(|rest| rest.split('"').next()).collect()
}

/// The part of `pack` that declares the target at `path`: from its `path:` line to the next
/// target's.
fn target_block<'a>(pack: &'a str, path: &str) -> &'a str {
    let marker = format!("path: \"{path}\"");
    let start = pack.find(&marker).unwrap_or_else(|| panic!("the Pack does not name the route {path}"));
    let rest = &pack[start + marker.len()..];
    &rest[..rest.find("path: \"").unwrap_or(rest.len())]
}

#[test]
fn the_pack_names_each_write_back_route_and_sends_exactly_its_staff_owned_fields() {
    let pack = pack_file("pack.ts");
    assert_eq!(pack.matches("path: \"").count(), TARGETS.len(), "one Pack target per write-back target");
    for target in &TARGETS {
        let block = target_block(&pack, route_prefix(target.route));
        assert_eq!(declared_fields(block), target.fields, "the fields the Pack sends to {}", target.route);
    }
    for action in ["UpdateIntake", "UpdateTask", "UpdatePriorAuth"] {
        assert!(pack.contains(&format!("action: \"{action}\"")), "no action {action}");
    }
    for needle in [
        "isAction: true",
        "method: \"PATCH\"",
        "\"Content-Type\": \"application/json\"",
        "edited_by",
        "expected_updated_at",
        "coda_row_id",
    ] {
        assert!(pack.contains(needle), "the Pack lacks {needle}");
    }
}

#[test]
fn the_pack_authenticates_with_one_system_wide_bearer_token_and_pins_its_sdk() {
    let pack = pack_file("pack.ts");
    assert!(pack.contains("pack.setSystemAuthentication({\n  type: coda.AuthenticationType.HeaderBearerToken"));
    assert!(!pack.contains("setUserAuthentication"), "one system-wide secret, not per-user accounts");
    assert!(pack.contains("pack.addNetworkDomain(AUGUST_DOMAIN)"));
    let manifest: serde_json::Value = serde_json::from_str(&pack_file("package.json")).unwrap();
    let sdk = manifest["dependencies"]["@codahq/packs-sdk"].as_str().expect("the SDK is a dependency");
    assert!(sdk.chars().all(|c| c.is_ascii_digit() || c == '.'), "the SDK version is pinned exactly: {sdk}");
}

#[test]
fn a_drifted_field_list_is_noticed() {
    // The check above could pass vacuously if the parsing found nothing: a Pack that dropped
    // one field or named another must fail it.
    let pack = pack_file("pack.ts");
    let intake = &TARGETS[0];
    let dropped = pack.replacen(&format!("field(\"{}\"", intake.fields[1]), "other(\"x\"", 1);
    assert_ne!(declared_fields(target_block(&dropped, route_prefix(intake.route))), intake.fields);
    let renamed = pack.replacen("field(\"notes\"", "field(\"note_text\"", 1);
    assert_ne!(declared_fields(target_block(&renamed, route_prefix(intake.route))), intake.fields);
}
