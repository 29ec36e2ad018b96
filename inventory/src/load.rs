//! Reading an inventory source: its format told by its name and content as Ansible tells it,
//! an executable one run for its `--list`, and the `group_vars/` and `host_vars/` beside it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Inventory, InventoryError, InventoryErrorKind, native, vars_dirs, yaml};

/// The largest inventory file read: 100,000 hosts with vars take about 10 MiB.
const MAX_BYTES: u64 = 256 << 20;

/// How long an executable inventory may take to answer `--list` (and each `--host`).
const SCRIPT_TIME: Duration = Duration::from_secs(60);

impl Inventory {
    /// Reads an inventory source, as Ansible does: an executable file starting with `#!`
    /// is run with `--list` and its JSON read; `.toml` is the native format; `.yml`,
    /// `.yaml`, `.json` and a name without an extension are YAML when they hold a mapping (a
    /// name without one falls back to INI, as Ansible's plugins do in turn); anything else
    /// is INI. The `group_vars/` and `host_vars/` beside it are read too.
    pub fn load(path: &Path) -> Result<Self, InventoryError> {
        let unreadable = |e| InventoryError {
            path: path.to_owned(),
            kind: InventoryErrorKind::Unreadable(e),
        };
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        let mut inv = if is_script(path, &meta) {
            script(path)?
        } else {
            Inventory::parse(&read_text(path)?, path)?
        };
        inv.add_vars_dirs(path.parent().unwrap_or(Path::new(".")))?;
        Ok(inv)
    }

    /// Parses inventory text in the format `path`'s name and the text's content say.
    pub fn parse(text: &str, path: &Path) -> Result<Self, InventoryError> {
        let ext = path.extension().and_then(|e| e.to_str());
        let inv = match ext {
            Some("toml") => native::parse(text),
            Some("yml" | "yaml" | "json") => yaml::parse(text),
            None if yaml::holds_a_mapping(text) => yaml::parse(text),
            _ => super::ini::parse(text),
        }
        .map_err(|m| InventoryError::new(path, m))?;
        inv.check(path)?;
        Ok(inv)
    }

    /// Reads the `group_vars/` and `host_vars/` in `dir` (when there are any) for this
    /// inventory's groups and hosts, above those read before: call it with the inventory's
    /// directory (as [`Inventory::load`] does), then with the plan's.
    pub fn add_vars_dirs(&mut self, dir: &Path) -> Result<(), InventoryError> {
        if let Some(found) = vars_dirs::read(dir, self)? {
            self.dirs.push(found);
        }
        Ok(())
    }
}

fn read_text(path: &Path) -> Result<String, InventoryError> {
    let unreadable = |e| InventoryError {
        path: path.to_owned(),
        kind: InventoryErrorKind::Unreadable(e),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let too_large = || {
        InventoryError::new(
            path,
            format!(
                "larger than {} MiB: refused (no inventory needs that much; split it)",
                MAX_BYTES >> 20
            ),
        )
    };
    if file.metadata().is_ok_and(|m| m.len() > MAX_BYTES) {
        return Err(too_large());
    }
    let mut text = String::new();
    // One byte past the limit tells a file at the limit from a larger one.
    std::io::Read::read_to_string(&mut std::io::Read::take(&file, MAX_BYTES + 1), &mut text)
        .map_err(unreadable)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(too_large());
    }
    Ok(text)
}

/// An executable file that starts with `#!`, as Ansible's script plugin wants: an INI
/// file checked out with the executable bit is still read as INI.
fn is_script(path: &Path, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mut start = [0u8; 2];
    meta.is_file()
        && meta.permissions().mode() & 0o111 != 0
        && std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut start))
            .is_ok()
        && &start == b"#!"
}

/// Runs an executable inventory with `--list` and reads its JSON: groups with `hosts`,
/// `vars` and `children` (or a bare list of hosts), and `_meta.hostvars`; without `_meta`,
/// each host's vars come from `--host NAME`, as Ansible asks for them.
fn script(path: &Path) -> Result<Inventory, InventoryError> {
    let list = run(path, &["--list"])?;
    let inv = yaml::from_script(&list, |host| run(path, &["--host", host]))
        .map_err(|m| InventoryError::new(path, m))?;
    inv.check(path)?;
    Ok(inv)
}

/// The JSON an executable inventory prints for `args`, within [`SCRIPT_TIME`].
fn run(path: &Path, args: &[&str]) -> Result<serde_json::Value, InventoryError> {
    let bad = |m: String| InventoryError::new(path, m);
    // A bare name is this directory's file, not one on $PATH.
    let program = if path.components().count() == 1 {
        Path::new(".").join(path)
    } else {
        path.to_owned()
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| bad(format!("cannot run it (an executable inventory): {e}")))?;
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(bad("no pipes to it".into()));
    };
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut out, MAX_BYTES + 1),
            &mut text,
        );
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::Read::take(&mut err, 64 << 10), &mut text);
        text
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| bad(e.to_string()))? {
            break status;
        }
        if started.elapsed() > SCRIPT_TIME {
            let _ = child.kill();
            let _ = child.wait();
            return Err(bad(format!(
                "{} did not answer within {} s",
                args.join(" "),
                SCRIPT_TIME.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if !status.success() {
        return Err(bad(format!(
            "{} failed ({status}): {}",
            args.join(" "),
            stderr.trim()
        )));
    }
    if text.len() as u64 > MAX_BYTES {
        return Err(bad(format!("{} printed more than 256 MiB", args.join(" "))));
    }
    serde_json::from_slice(&text)
        .map_err(|e| bad(format!("{} did not print JSON: {e}", args.join(" "))))
}
