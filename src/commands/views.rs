//! `august views [--json]`: every view with its key column and columns, for writing a Coda
//! mapping file.

use std::io::Write;

use august_dataflow::views;

/// Prints the views; `--json` prints `[{"name", "key", "columns"}, …]`.
pub fn run(json: bool) -> anyhow::Result<()> {
    let all = views::all();
    let mut text = String::new();
    if json {
        text = serde_json::to_string(&all)?;
        text.push('\n');
    } else {
        for view in &all {
            text.push_str(&format!("{} (key: {})\n    {}\n", view.name, view.key, view.columns.join(", ")));
        }
    }
    print_all(&text)
}

/// Writes to standard output; a reader that went away early (`| head`) is not an error.
pub fn print_all(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
