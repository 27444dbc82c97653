//! `campaignd sign`: prints the Callbot signature for given inputs, to debug an integration.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use callbot_api::sign::{self, Algorithm, SecretKey};

/// Arguments of `campaignd sign`.
///
/// The body is read from standard input as raw bytes and signed exactly as read: a trailing newline (which `echo` and
/// most editors add) IS part of the body unless `--trim` is given. Prints the uppercase hex sign on stdout.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The body is read from standard input and signed byte for byte: a trailing newline (which `echo` adds) \
                  is part of the body unless --trim is given. The sign is printed on stdout.\n\nExample:\n  printf '%s' '{\"data\":\"hi\"}' | campaignd sign --uuid U --secret-key-file key.txt \\\n      --request-id R --create-ts 1732190400 --algorithm sha256"
)]
pub struct SignArgs {
    /// Account uuid (the `uuid` header).
    #[arg(long)]
    uuid: String,

    /// Account secret key. Prefer --secret-key-file or the environment variable: arguments show up in `ps`.
    #[arg(
        long,
        env = "CAMPAIGND_SIGN_SECRET_KEY",
        hide_env_values = true,
        conflicts_with = "secret_key_file",
        required_unless_present = "secret_key_file"
    )]
    secret_key: Option<String>,

    /// File holding the secret key; one trailing line break in it is ignored.
    #[arg(long, value_name = "PATH")]
    secret_key_file: Option<PathBuf>,

    /// Request ID (the `requestID` header).
    #[arg(long)]
    request_id: String,

    /// Request time in Unix seconds, exactly as sent in the `createTs` header.
    #[arg(long)]
    create_ts: String,

    /// Signature algorithm: md5 (the platform's default) or sha256.
    #[arg(long, default_value = "md5", value_parser = parse_algorithm)]
    algorithm: Algorithm,

    /// Remove trailing line breaks (\n, \r\n) from the body before signing. Off by default: the body is signed
    /// byte for byte as read from stdin.
    #[arg(long)]
    trim: bool,

    /// Also print the signed plaintext on stderr, with the secret masked as ***.
    #[arg(long, short)]
    verbose: bool,
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    s.parse().map_err(|e: sign::UnknownAlgorithm| e.to_string())
}

/// Reads the body from stdin and prints its sign.
pub fn run(args: SignArgs) -> anyhow::Result<ExitCode> {
    let secret = read_secret(&args)?;
    let mut body = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut body)
        .context("cannot read the body from standard input")?;
    if args.trim {
        while matches!(body.last(), Some(b'\n' | b'\r')) {
            body.pop();
        }
    }
    let signature = sign::sign(
        &secret,
        &body,
        &args.create_ts,
        &args.request_id,
        &args.uuid,
        args.algorithm,
    );
    if args.verbose {
        let plaintext =
            sign::plaintext_masked(&body, &args.create_ts, &args.request_id, &args.uuid);
        eprintln!("algorithm: {}", args.algorithm.as_header());
        eprintln!("body bytes: {}", body.len());
        eprintln!("plaintext: {plaintext}");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{signature}").context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

fn read_secret(args: &SignArgs) -> anyhow::Result<SecretKey> {
    let secret = match (&args.secret_key, &args.secret_key_file) {
        (Some(s), _) => s.clone(),
        (None, Some(path)) => {
            let mut s = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the secret key file {}", path.display()))?;
            if s.ends_with('\n') {
                s.pop();
                if s.ends_with('\r') {
                    s.pop();
                }
            }
            s
        }
        (None, None) => anyhow::bail!(
            "no secret key: pass --secret-key-file PATH, --secret-key KEY or set CAMPAIGND_SIGN_SECRET_KEY"
        ),
    };
    if secret.is_empty() {
        anyhow::bail!("the secret key is empty: copy it from the console's Developer section");
    }
    Ok(SecretKey::new(secret))
}
