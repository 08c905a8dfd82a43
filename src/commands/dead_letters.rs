//! `august dead-letters list | resolve ID… | replay [--view V] [ID…]`: the rows Coda refused,
//! for the engineer on call. Listing shows ids, views, keys, targets and statuses, never the
//! refused values or Coda's message (they may hold PHI; they stay in `sink_dead_letters`).
//! `replay` takes effect when the sink next starts (`replicate` or `serve`): it sends those
//! rows' current content again.

use august_sinks::coda::dead_letters;

use crate::settings::Sources;
use crate::ConfigError;

/// What to do with the dead letters.
#[derive(Debug, clap::Subcommand)]
pub enum DeadLettersCommand {
    /// List open dead letters (with --all, closed ones too).
    List {
        /// Only this view's.
        #[arg(long)]
        view: Option<String>,
        /// Closed ones too.
        #[arg(long)]
        all: bool,
    },
    /// Close dead letters that need nothing more (fixed by hand in Coda, or no longer wanted).
    Resolve {
        /// Their ids (from `list`).
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Close dead letters and have the sink send their rows again at its next start.
    Replay {
        /// Every open one of this view (without ids).
        #[arg(long)]
        view: Option<String>,
        /// Their ids (from `list`); none: every open one (of --view).
        ids: Vec<i64>,
    },
}

/// Runs the subcommand.
pub async fn run(sources: &Sources, command: DeadLettersCommand) -> anyhow::Result<()> {
    let (_, pg) = sources.database().map_err(ConfigError)?;
    let mut db = august_schema::connect(&pg).await?;
    match command {
        DeadLettersCommand::List { view, all } => {
            let letters = dead_letters::list(&db, view.as_deref(), all).await?;
            println!(
                "{:>8}  {:<24} {:<24} {:<28} {:>6}  {:<25} state",
                "id", "view", "key", "target", "status", "refused at"
            );
            for l in &letters {
                println!(
                    "{:>8}  {:<24} {:<24} {:<28} {:>6}  {:<25} {}",
                    l.id,
                    l.view,
                    l.key,
                    l.target,
                    l.status.map_or("—".into(), |s| s.to_string()),
                    l.created_at.to_rfc3339(),
                    l.resolution.as_deref().unwrap_or("open")
                );
            }
            println!("{} dead letter(s)", letters.len());
        }
        DeadLettersCommand::Resolve { ids } => {
            let closed = dead_letters::resolve(&db, &ids).await?;
            println!("resolved {closed} of {} dead letter(s)", ids.len());
        }
        DeadLettersCommand::Replay { view, ids } => {
            let replayed = dead_letters::replay(&mut db, view.as_deref(), &ids).await?;
            println!("{replayed} row(s) will be sent to Coda again when the sink next starts (replicate or serve)");
        }
    }
    Ok(())
}
