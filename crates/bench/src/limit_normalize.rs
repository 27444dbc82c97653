//! limit-normalize: what the machine allows for reading the contacts file, with no store and no platform. The same
//! CSV the upload scenario reads (N rows, `env::write_csv`) is read on ONE thread by the reader the daemon's
//! planning uses (`campaign::ContactReader`: CSV records, phone normalisation with libphonenumber, duplicate check,
//! order IDs); the daemon's own wrapper (`daemon`'s private `contacts::Reader`) only moves each contact into a
//! `NewOrder` on top of it. Then, to show its share, the phone normalisation alone over the same N numbers, in memory.

use std::time::Instant;

use anyhow::{Context, bail};

use crate::env;
use crate::report::{Figures, short};

const ID: &str = "bench-limit-normalize";

pub async fn run(n: u64) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir().context("creating the campaigns directory")?;
    env::write_csv(&dir.path().join("contacts.csv"), 0, n)?;
    let file = dir.path().join(format!("{ID}.toml"));
    std::fs::write(&file, env::campaign_toml("contacts.csv", true, 20))?;
    let spec = campaign::load_campaign(&file).map_err(|d| anyhow::anyhow!("{d:?}"))?;
    // Read once untimed, so both timed passes find the file in the page cache.
    let _ = std::fs::read(&spec.contacts.file).context("reading the CSV")?;

    let (read_secs, valid, issues, norm_secs, cpu) = tokio::task::spawn_blocking(move || {
        // libphonenumber loads its metadata on first use, once per process (about 0.2 s): not per row.
        campaign::normalize_phone(&env::phone(0), None).map_err(anyhow::Error::msg)?;
        let cpu0 = crate::procfs::cpu_secs(None);
        let t = Instant::now();
        let reader = campaign::ContactReader::open(&spec)?;
        let (mut valid, mut issues) = (0u64, 0u64);
        for item in reader {
            match item {
                Ok(c) => {
                    valid += 1;
                    std::hint::black_box(c);
                }
                Err(_) => issues += 1,
            }
        }
        let read_secs = t.elapsed().as_secs_f64();
        let cpu = crate::procfs::cpu_secs(None) - cpu0;

        let raw: Vec<String> = (0..n).map(env::phone).collect();
        let t = Instant::now();
        for p in &raw {
            let normalized = campaign::normalize_phone(p, None).map_err(anyhow::Error::msg)?;
            std::hint::black_box(normalized);
        }
        let norm_secs = t.elapsed().as_secs_f64();
        anyhow::Ok((read_secs, valid, issues, norm_secs, cpu))
    })
    .await
    .context("joining the reader thread")??;
    if valid != n || issues != 0 {
        bail!("read {valid} valid contacts and {issues} issues out of {n} rows");
    }

    let rate = n as f64 / read_secs;
    let us_per_row = read_secs * 1e6 / n as f64;
    let norm_us = norm_secs * 1e6 / n as f64;
    let mut f = Figures::new("limit-normalize", "none", n);
    f.put("secs", read_secs)
        .put("rows_per_s", rate)
        .put("us_per_row", us_per_row)
        .put("cpu_secs", cpu)
        .put("normalize_only_secs", norm_secs)
        .put("normalize_only_us_per_row", norm_us)
        .put("peak_rss_mb", crate::procfs::peak_rss_mb(None));
    f.line = format!(
        "limit-normalize {n} CSV rows read, normalised and checked for duplicates on one thread in {} s: {} rows/s, \
         {} µs per row (phone normalisation alone: {} µs per row)",
        short(read_secs),
        short(rate),
        short(us_per_row),
        short(norm_us)
    );
    Ok(f)
}
