//! `wisp keygen` and `wisp nats-config`: the keys and the NATS server users a run through
//! workers needs.

use std::path::PathBuf;

use clap::Args;

use super::usage_error;
use wisp_bus as bus;
use wisp_bus::item::Signer;
use wisp_events::exit::ExitStatus;
use wisp_protocol::error::chain as error_chain;

#[derive(Debug, Args)]
pub(super) struct KeygenArgs {
    /// Where to write the secret key (0600; never over an existing file); the public key
    /// goes beside it as FILE.pub.
    file: PathBuf,
}

/// `wisp keygen`.
pub(super) fn keygen(a: &KeygenArgs) -> ExitStatus {
    match Signer::generate(&a.file) {
        Ok(public) => {
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!(
                    "wrote {file} and {public}\n\
                     - a job key: controllers sign with --sign-jobs {file}, workers trust \
                     --trust-jobs {public}\n\
                     - a worker's key: that worker signs with --sign-events {file}, \
                     controllers and the other workers trust --trust-workers {public}\n",
                    file = a.file.display(),
                    public = public.display()
                ),
            );
            ExitStatus::Ok
        }
        Err(e) => usage_error(&error_chain(&e)),
    }
}

#[derive(Debug, Args)]
pub(super) struct NatsConfigArgs {
    /// The directory to write into (made 0700 when missing): wisp-auth.conf, controller.nk
    /// and worker.nk. Nothing there is overwritten.
    dir: PathBuf,
}

/// `wisp nats-config`: the users and permissions of a NATS server for wisp.
pub(super) fn nats_config(a: &NatsConfigArgs) -> ExitStatus {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let write = |name: &str, mode: u32, text: &str| -> Result<PathBuf, String> {
        let path = a.dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    };
    let made = (|| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&a.dir)
            .map_err(|e| format!("{}: {e}", a.dir.display()))?;
        let controller = nkeys::KeyPair::new_user();
        let worker = nkeys::KeyPair::new_user();
        let seed = |k: &nkeys::KeyPair| k.seed().map_err(|e| e.to_string());
        let c = write("controller.nk", 0o600, &format!("{}\n", seed(&controller)?))?;
        let w = write("worker.nk", 0o600, &format!("{}\n", seed(&worker)?))?;
        let conf = write(
            "wisp-auth.conf",
            0o644,
            &bus::permissions::authorization(&controller.public_key(), &worker.public_key()),
        )?;
        Ok::<_, String>((conf, c, w))
    })();
    match made {
        Ok((conf, c, w)) => {
            let _ = writeln!(
                std::io::stderr(),
                "wrote {conf} (an `include wisp-auth.conf` line in a nats-server.conf beside \
                 it, with `jetstream {{ }}`, turns it on), {c} (controllers: --nats-nkey {c}) \
                 and {w} (workers: --nats-nkey {w}); keep the .nk files secret",
                conf = conf.display(),
                c = c.display(),
                w = w.display()
            );
            ExitStatus::Ok
        }
        Err(e) => usage_error(&e),
    }
}
