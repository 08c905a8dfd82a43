//! Embeds every `migrations/NNNN_name.sql` file into the crate, in file-name order, so the
//! `august` binary carries its schema and needs no files beside it when deployed.

use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("..")
        .join("migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("the migrations/ folder is readable")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    let mut out =
        String::from("/// Every migration file, in the order it is applied.\npub static EMBEDDED: &[Migration] = &[\n");
    for name in &names {
        let path = dir.join(name).canonicalize().expect("migration path resolves");
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    Migration {{ name: {name:?}, sql: include_str!({path:?}) }},\n",
            path = path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("migrations.rs");
    fs::write(dest, out).expect("OUT_DIR is writable");
}
