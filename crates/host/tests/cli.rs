//! The `cache-sync-host` binary: a bad setup is one line and a non-zero exit; a good one
//! serves and stops cleanly on SIGINT.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cache-sync-host"))
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cache-sync-cli-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs the binary with `args` in `dir` and expects failure with one stderr line
/// containing `needle`.
fn check_fails(dir: &PathBuf, args: &[&str], needle: &str) {
    let out = bin()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected for {args:?}: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: '{stderr}' should mention '{needle}'"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

const VALID: &str = r#"
spin_manifest_version = 2
[application]
name = "cli"
[variables]
token = { required = true }
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "missing.wasm"
[component.web.variables]
token = "{{ token }}"
"#;

#[test]
fn bad_setups_fail_with_one_line() {
    let dir = temp("bad");
    check_fails(&dir, &["--from", "nope.toml"], "nope.toml");
    std::fs::write(dir.join("broken.toml"), "spin_manifest_version = [").expect("write");
    check_fails(&dir, &["--from", "broken.toml"], "TOML");
    std::fs::write(dir.join("spin.toml"), VALID).expect("write");
    check_fails(&dir, &[], "token");
    check_fails(&dir, &["--variable", "token=x"], "missing.wasm");
    std::fs::write(dir.join("missing.wasm"), b"not wasm").expect("write");
    check_fails(&dir, &["--variable", "token=x"], "not a WebAssembly");
    check_fails(&dir, &["--variable", "nonsense"], "key=value");
    check_fails(&dir, &["--listen", "not-an-address"], "not-an-address");
    check_fails(&dir, &["--bogus-flag"], "--bogus-flag");
    std::fs::write(dir.join(".env"), "SPIN_VARIABLE_TOKEN=x\nnot a pair\n").expect("write");
    check_fails(&dir, &[], ".env");
    std::fs::remove_file(dir.join(".env")).expect("remove .env");
    std::fs::write(
        dir.join("routes.toml"),
        VALID.replace("route = \"/...\"", "route = \"/a/:\""),
    )
    .expect("write");
    check_fails(
        &dir,
        &["--from", "routes.toml", "--variable", "token=x"],
        "route",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serves_static_routes_and_stops_on_sigint() {
    let dir = temp("serve");
    std::fs::write(
        dir.join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"s\"\n[[trigger.http]]\nroute = \"/hello\"\nstatic_response = { body = \"hi\" }\n",
    )
    .expect("write");
    // `.env` as Spin reads it, and a `--variable` the app does not declare: both accepted.
    std::fs::write(dir.join(".env"), "SPIN_VARIABLE_UNUSED=\"40s\" # comment\n")
        .expect("write .env");
    let mut child = bin()
        .current_dir(&dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--variable",
            "undeclared=1",
            "--tcp-nodelay",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut addr = None;
    while addr.is_none() && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => addr = line.strip_prefix("Serving http://").map(str::to_string),
            _ => break,
        }
    }
    let addr = addr.expect("prints the serving address");
    let mut stream = std::net::TcpStream::connect(&addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("hi"),
        "{response}"
    );
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "host did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "clean exit on SIGINT: {exit}");
    let _ = std::fs::remove_dir_all(&dir);
}
