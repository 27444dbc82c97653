//! Reading the campaigns directory: every `*.toml` file (symlinks followed, so Kubernetes ConfigMap mounts, whose
//! files are links through a `..data` directory swapped atomically, read the current version).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use campaign::CampaignSpec;

/// One pass over the directory.
#[derive(Debug, Default)]
pub struct FileScan {
    /// The directory itself could not be read.
    pub dir_error: Option<String>,
    /// Every campaign file, parsed and validated, or the rendered diagnostics.
    pub files: Vec<(PathBuf, Result<CampaignSpec, String>)>,
}

/// The campaign files of `dir`, sorted by path. Hidden files (`.x.toml`, editor swap files) are skipped.
pub fn campaign_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        // `is_file` follows symlinks.
        if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Loads every campaign file of `dir`.
pub fn scan_dir(dir: &Path) -> FileScan {
    let files = match campaign_files(dir) {
        Ok(files) => files,
        Err(e) => {
            return FileScan {
                dir_error: Some(format!("{}: {e}", dir.display())),
                files: vec![],
            };
        }
    };
    let files = files
        .into_iter()
        .map(|path| {
            let result = campaign::load_campaign(&path).map_err(|diags| {
                let mut sources = BTreeMap::new();
                if let Ok(text) = std::fs::read_to_string(&path) {
                    sources.insert(path.clone(), text);
                }
                diags.render_human(&sources)
            });
            (path, result)
        })
        .collect();
    FileScan {
        dir_error: None,
        files,
    }
}
