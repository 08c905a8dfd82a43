//! `august views --json` lists every view with its key and columns.

use crate::{august, stdout};

#[test]
fn views_json_lists_name_key_and_columns_in_that_order() {
    let out = august(&["views", "--json"], &[]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with(r#"[{"name":"deepcura_links","key":"note_id","columns":["note_id","#), "{}", &text[..80]);
    let views: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = views.iter().map(|v| v["name"].as_str().unwrap()).collect();
    for name in [
        "scheduling_ops",
        "clinical_notes",
        "patient_intake",
        "prior_auths",
        "post_appointment_tasks",
        "deepcura_review",
        "patients",
        "appointments",
    ] {
        assert!(names.contains(&name), "{name}");
    }
    let scheduling = views.iter().find(|v| v["name"] == "scheduling_ops").unwrap();
    assert_eq!(scheduling["key"], "appointment_id");
    assert!(scheduling["columns"].as_array().unwrap().iter().any(|c| c == "phone"));
}

#[test]
fn every_column_has_its_phi_class_and_a_mapping_shows_which_phi_leaves_for_which_table() {
    let views: Vec<serde_json::Value> = serde_json::from_str(&stdout(&august(&["views", "--json"], &[]))).unwrap();
    for view in &views {
        let (columns, classes) = (view["columns"].as_array().unwrap(), view["classes"].as_array().unwrap());
        assert_eq!(columns.len(), classes.len(), "{}", view["name"]);
        for class in classes {
            assert!(["direct", "clinical", "identifier", "operational"].contains(&class.as_str().unwrap()));
        }
    }
    let text = stdout(&august(&["views"], &[]));
    assert!(text.contains("patient_name [direct]") && text.contains("soap_plan [clinical]"), "{text}");

    let mapping = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-mapping.toml");
    let out = august(&["views", "--mapping", mapping], &[]);
    assert!(out.status.success());
    let text = stdout(&out);
    let links = text.lines().skip_while(|l| !l.starts_with("deepcura_links ->")).take(3).collect::<Vec<_>>();
    assert!(links[0].contains("(allow: identifier, operational)"), "{links:?}");
    assert!(links[1].trim_start().starts_with("identifier:"), "no PHI leaves with the links: {links:?}");
    let clinical = text.lines().skip_while(|l| !l.starts_with("clinical_notes ->")).nth(1).unwrap();
    assert!(clinical.contains("direct:") && clinical.contains("patient_name -> "), "{clinical}");

    let json: Vec<serde_json::Value> =
        serde_json::from_str(&stdout(&august(&["views", "--mapping", mapping, "--json"], &[]))).unwrap();
    let notes = json.iter().find(|t| t["view"] == "clinical_notes").unwrap();
    assert!(notes["carries"]["clinical"]["soap_plan"].is_string(), "{notes}");
    assert!(json.iter().find(|t| t["view"] == "deepcura_links").unwrap()["carries"].get("direct").is_none());

    let missing = august(&["views", "--mapping", "/no/such/mapping.toml"], &[]);
    assert_eq!(missing.status.code(), Some(2));
}
