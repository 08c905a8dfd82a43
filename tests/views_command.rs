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
