//! `august verify [RESOURCE…|all] [--coda]`: the seeds' data verification, for a person to run
//! before and after a cut-over. Per DrChrono resource it compares counts, a checksum of the
//! mirrored fields and the ids that differ between DrChrono and Postgres
//! ([`august_ingest::drchrono::verify`], sampled when this hour's call budget cannot cover
//! every list); with `--coda` it also reads every mapped Coda table and compares it row for
//! row with its view computed from Postgres ([`coda`]). Exit 0 when everything is equal, 1 with
//! a table of differences. Ids and column names only: never a value.

pub mod coda;

use crate::settings::Sources;

/// What to verify.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// DrChrono resources to compare (as for `august sync`), or `all`.
    #[arg(value_name = "RESOURCE", default_value = "all")]
    resources: Vec<String>,
    /// Also compare every mapped Coda table with its view computed from Postgres.
    #[arg(long)]
    coda: bool,
    /// Skip DrChrono (with --coda: check Coda alone).
    #[arg(long)]
    no_drchrono: bool,
}

/// Compares, prints the differences, and fails (exit 1) when there are any.
pub async fn run(sources: &Sources, args: VerifyArgs) -> anyhow::Result<()> {
    let feeds = super::sync::resources(&args.resources)?;
    let mut different = 0;
    if !args.no_drchrono {
        let syncer = super::sync::connect(sources, "august verify").await?;
        let reports = august_ingest::drchrono::verify::verify(syncer.client(), syncer.pool(), &feeds).await?;
        syncer.client().flush_access_log().await;
        println!(
            "{:<16} {:<18} {:>8} {:>10} {:>10} {:<9} differing ids",
            "resource", "table", "pages", "DrChrono", "Postgres", "checksum"
        );
        for r in &reports {
            let pages = if r.whole { r.pages.to_string() } else { format!("{} (sample)", r.pages) };
            let listed = if r.differing_total > r.differing.len() as i64 {
                format!("{} … ({} in all)", r.differing.join(", "), r.differing_total)
            } else {
                r.differing.join(", ")
            };
            println!(
                "{:<16} {:<18} {:>8} {:>10} {:>10} {:<9} {}",
                r.feed,
                r.table,
                pages,
                r.drchrono_rows,
                r.postgres_rows,
                if r.checksum_equal { "equal" } else { "differs" },
                if listed.is_empty() { "—".into() } else { listed }
            );
            different += usize::from(!r.equal());
        }
    }
    if args.coda {
        let (compared, differences) = coda::compare(sources).await?;
        println!("Coda: {compared} rows compared, {} differences", differences.len());
        for d in &differences {
            println!("  {:<24} {:<24} {}", d.view, d.key, d.problem);
        }
        different += differences.len();
    }
    if different > 0 {
        anyhow::bail!("verification found differences ({different})");
    }
    println!("verified: DrChrono, Postgres{} agree", if args.coda { " and Coda" } else { "" });
    Ok(())
}
