//! `wisp secrets`: make an identity, create a secrets file for a team, and set, list, remove or
//! edit its secrets. Values are read from stdin (or typed without echo), never from the command
//! line, and never printed.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use wisp_events::exit::ExitStatus;
use wisp_protocol::error::chain as error_chain;

/// `wisp secrets ...`.
#[derive(Debug, Args)]
pub(super) struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Make an age identity (private key) file, 0600; prints its public key.
    Keygen {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Create an empty secrets file for these recipients (public keys: yours and your team's).
    ///
    /// The recipients are kept in FILE.recipients; every later change encrypts to them all.
    Init {
        /// The secrets file to create (`secrets.age`).
        file: PathBuf,
        /// An age public key (`age1...`) that may open the file (repeatable).
        #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY", required = true)]
        recipients: Vec<String>,
    },
    /// Set a secret; the value is read from stdin (typed without echo on a terminal). A
    /// single line loses its final newline; a longer value (`< key.pem`) is kept exactly.
    Set {
        /// The secrets file.
        file: PathBuf,
        /// The secret's name (letters, digits, `_`).
        name: String,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// List the secrets' names (never their values).
    List {
        /// The secrets file.
        file: PathBuf,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Remove a secret.
    Rm {
        /// The secrets file.
        file: PathBuf,
        /// The secret's name.
        name: String,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Edit all secrets in $EDITOR (a 0600 file in a private directory, removed afterwards).
    Edit {
        /// The secrets file.
        file: PathBuf,
        #[command(flatten)]
        identity: IdentityArg,
    },
}

/// Where the key to open the secrets comes from.
#[derive(Debug, Args)]
pub(super) struct IdentityArg {
    /// The age identity file [default: $WISP_AGE_IDENTITY, else the key in $WISP_AGE_KEY].
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

fn fail(message: &str) -> ExitStatus {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    ExitStatus::BadOptions
}

fn open(file: &Path, identity: &IdentityArg) -> Result<wisp_secrets::SecretValues, String> {
    wisp_secrets::identities(identity.identity.as_deref())
        .and_then(|ids| wisp_secrets::open(file, &ids))
        .map_err(|e| error_chain(&e))
}

/// Saves, with the error as the operator reads it.
fn save(file: &Path, values: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    wisp_secrets::save(file, values).map_err(|e| error_chain(&e))
}

/// Runs `wisp secrets`.
pub(super) fn main(args: SecretsArgs) -> ExitStatus {
    let result = match args.command {
        SecretsCommand::Keygen { out } => keygen(&out),
        SecretsCommand::Init { file, recipients } => init(&file, &recipients),
        SecretsCommand::Set {
            file,
            name,
            identity,
        } => set(&file, &name, &identity),
        SecretsCommand::List { file, identity } => open(&file, &identity).map(|v| {
            let mut out = std::io::stdout().lock();
            for n in v.names() {
                let _ = writeln!(out, "{n}");
            }
        }),
        SecretsCommand::Rm {
            file,
            name,
            identity,
        } => open(&file, &identity).and_then(|v| {
            let mut map = wisp_secrets::into_map(v);
            if map.remove(&name).is_none() {
                return Err(format!("{} has no secret {name:?}", file.display()));
            }
            save(&file, &map)
        }),
        SecretsCommand::Edit { file, identity } => edit(&file, &identity),
    };
    match result {
        Ok(()) => ExitStatus::Ok,
        Err(e) => fail(&e),
    }
}

fn keygen(out: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let (text, public) = wisp_secrets::keygen();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = writeln!(std::io::stdout(), "{public}");
    Ok(())
}

fn init(file: &Path, recipients: &[String]) -> Result<(), String> {
    if file.exists() {
        return Err(format!("{} exists; not replacing it", file.display()));
    }
    let list = format!(
        "# who can open {}\n{}\n",
        file.display(),
        recipients.join("\n")
    );
    let path = wisp_secrets::recipients_path(file);
    std::fs::write(&path, list).map_err(|e| format!("{}: {e}", path.display()))?;
    save(file, &Default::default()).inspect_err(|_| {
        let _ = std::fs::remove_file(&path);
    })
}

fn set(file: &Path, name: &str, identity: &IdentityArg) -> Result<(), String> {
    if !wisp_secrets::valid_name(name) {
        return Err(format!(
            "{name:?} is not a secret name (letters, digits, _)"
        ));
    }
    let values = open(file, identity)?;
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("value of {name}: "))
            .map_err(|e| format!("cannot read the value: {e}"))?
    } else {
        let mut v = String::new();
        std::io::stdin()
            .read_to_string(&mut v)
            .map_err(|e| format!("cannot read the value from stdin: {e}"))?;
        // One line is a typed or echoed value: its newline ends it. Anything longer (a key
        // file) is kept exactly, final newline included.
        match v.strip_suffix('\n') {
            Some(line) if !line.contains('\n') => line.to_owned(),
            _ => v,
        }
    };
    if value.is_empty() {
        return Err("an empty value: nothing set".into());
    }
    let mut map = wisp_secrets::into_map(values);
    map.insert(name.to_owned(), value);
    save(file, &map)
}

fn edit(file: &Path, identity: &IdentityArg) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let values = wisp_secrets::into_map(open(file, identity)?);
    let base = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = wisp_secrets::files::private_dir(&base, "wisp-secrets-").map_err(|e| {
        format!(
            "cannot make a private directory for the decrypted copy in {}: {e} (set XDG_RUNTIME_DIR or TMPDIR to a directory of your own)",
            base.display()
        )
    })?;
    let path = dir.join("secrets.toml");
    let result = (|| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(wisp_secrets::text_of(&values).as_bytes()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let editor = std::env::var("EDITOR").unwrap_or_else(|_| "vi".into());
        let status = std::process::Command::new("sh")
            .args(["-c", "exec $0 \"$1\"", &editor])
            .arg(&path)
            .status()
            .map_err(|e| format!("cannot run {editor}: {e}"))?;
        if !status.success() {
            return Err(format!("{editor} failed ({status}); nothing changed"));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let edited =
            wisp_secrets::parse_text(&text).map_err(|e| format!("{e}; nothing changed"))?;
        if edited != values {
            save(file, &edited)?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
