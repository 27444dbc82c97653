#![doc = include_str!("../README.md")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// A fresh, empty database for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// URL of the fresh database.
    pub url: String,
    /// Set when the database lives on a server given by `TEST_DATABASE_URL`: dropped on drop.
    cleanup: Option<(String, String)>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The throwaway cluster dies with the process; a shared server keeps nothing behind.
        if let Some((admin_url, name)) = self.cleanup.take() {
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A SQLite database file in its own temporary directory (removed on drop).
#[derive(Debug)]
pub struct TestSqlite {
    /// `sqlite://` URL of the (not yet created) database file.
    pub url: String,
    _dir: tempfile::TempDir,
}

/// A fresh SQLite database URL in a new temporary directory.
///
/// # Panics
/// When no temporary directory can be created.
pub fn sqlite_database() -> TestSqlite {
    let dir = tempfile::Builder::new()
        .prefix("campaignd-sqlite-")
        .tempdir()
        .expect("create a temporary directory");
    TestSqlite {
        url: sqlite_url(dir.path()),
        _dir: dir,
    }
}

/// URL of a SQLite database file inside `dir` (created on open).
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("campaignd.db").display())
}

/// A fresh database on a real PostgreSQL server (see the crate docs for where the server comes from).
///
/// # Panics
/// When no server can be found or started, with a message saying how to provide one.
pub async fn postgres_database() -> TestDatabase {
    match try_postgres_database().await {
        Ok(db) => db,
        Err(e) => panic!(
            "no PostgreSQL server for the tests: {e:#}\n\
             Provide one of:\n  \
             - TEST_DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/postgres (a server where USER may CREATE DATABASE)\n  \
             - the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install postgresql`), so the tests can start \
             a throwaway cluster from /usr/lib/postgresql/*/bin"
        ),
    }
}

async fn try_postgres_database() -> anyhow::Result<TestDatabase> {
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    if let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") {
        let url = create_database(&admin_url, &name)
            .await
            .context("using TEST_DATABASE_URL")?;
        return Ok(TestDatabase {
            url,
            cleanup: Some((admin_url, name)),
        });
    }
    let server = throwaway_server()
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let url = create_database(&server.admin_url, &name)
        .await
        .context("on the throwaway cluster")?;
    Ok(TestDatabase { url, cleanup: None })
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(admin_url)))?;
    let sql = format!("CREATE DATABASE \"{name}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .context("CREATE DATABASE")?;
    let _ = conn.close().await;
    let mut url = url::Url::parse(admin_url).context("TEST_DATABASE_URL is not a URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A cluster started once per test process.
#[derive(Debug)]
struct Server {
    admin_url: String,
    /// Held for the life of the process: when it closes, the server's shell stops the server.
    _lifeline: ChildStdin,
}

fn throwaway_server() -> &'static Result<Server, String> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut last = String::new();
        // A free port can be taken between our probe and the server's bind (other test processes): retry.
        for _ in 0..3 {
            match start_server() {
                Ok(s) => return Ok(s),
                Err(e) => last = format!("{e:#}"),
            }
        }
        Err(last)
    })
}

fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop()
        .map(|(_, bin)| bin)
        .context("no initdb and postgres under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Runs a program, as the `postgres` user when we are root.
fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start_server() -> anyhow::Result<Server> {
    let bin = postgres_bin_dir()?;
    let root = is_root();
    let base = tempfile::Builder::new()
        .prefix("campaignd-pg-")
        .tempdir()
        .context("temp dir")?
        .keep();
    let data = base.join("data");
    let sock = base.join("sock");
    std::fs::create_dir(&sock).context("socket dir")?;
    if root {
        let status = Command::new("chown")
            .arg("-R")
            .arg("postgres:")
            .arg(&base)
            .status()
            .context("chown")?;
        if !status.success() {
            bail!("cannot chown {} to the postgres user", base.display());
        }
    }

    let out = command(root, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .stdin(Stdio::null())
        .output()
        .context("running initdb")?;
    if !out.status.success() {
        bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .context("probe port")?
        .local_addr()?
        .port();
    // The shell starts the server, then waits on its stdin: our end of that pipe closes when this process ends
    // (normally or not), and the shell then stops the server and removes its files.
    let script = r#"
        "$0" -D "$1" -k "$2" -h 127.0.0.1 -p "$3" -F -c fsync=off -c synchronous_commit=off \
            -c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB &
        p=$!
        read _ignored
        kill -INT "$p" 2>/dev/null
        wait "$p"
        rm -rf "$4"
    "#;
    let mut child = command(root, Path::new("/bin/sh"))
        .arg("-c")
        .arg(script)
        .arg(bin.join("postgres"))
        .arg(&data)
        .arg(&sock)
        .arg(port.to_string())
        .arg(&base)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting postgres")?;
    let lifeline = child.stdin.take().context("server stdin")?;
    let stderr = child.stderr.take().context("server stderr")?;

    // Read the log until the server says it is ready (or exits); keep draining it afterwards.
    let (tx, rx) = mpsc::channel::<Result<(), String>>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut log = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.is_some() {
                log.push_str(&line);
                log.push('\n');
                if line.contains("ready to accept connections")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(Ok(()));
                }
            }
        }
        if let Some(tx) = tx.take() {
            let _ = tx.send(Err(log));
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(())) => {}
        Ok(Err(log)) => bail!("postgres exited before it was ready:\n{log}"),
        Err(_) => bail!("postgres was not ready within 60 s"),
    }
    // The child is the shell; it is reaped when the process exits.
    std::mem::forget(child);
    Ok(Server {
        admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        _lifeline: lifeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_each_test_a_fresh_database() {
        let a = postgres_database().await;
        let b = postgres_database().await;
        assert_ne!(a.url, b.url);
        let mut conn = PgConnection::connect(&a.url).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut other = PgConnection::connect(&b.url).await.unwrap();
        let n: (i64,) = sqlx::query_as("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert_eq!(
            n.0, 0,
            "the second database must not see the first one's table"
        );
    }

    #[test]
    fn sqlite_url_points_into_the_directory() {
        let url = sqlite_url(Path::new("/tmp/x"));
        assert_eq!(url, "sqlite:///tmp/x/campaignd.db");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:1/db"),
            "postgres://u:***@h:1/db"
        );
    }
}
