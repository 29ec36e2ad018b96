//! `--output-dir`: each host's stdout and stderr, byte for byte, in `<host>.stdout` and
//! `<host>.stderr`. The files are opened without following links and must be this user's own
//! (see [`wisp_secrets::files::open_for_output`]); a write that fails (a full disk) is kept and fails
//! the host when its command ends, so no output is lost silently.

use std::path::{Path, PathBuf};

/// A file or folder of `--output-dir` that could not be created or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} {}", path.display())]
pub(crate) struct OutputError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// The two files of one host.
pub(crate) struct OutputFiles {
    files: [(PathBuf, std::fs::File); 2],
    /// The first write that failed.
    failed: Option<OutputError>,
}

impl OutputFiles {
    /// Creates (empties) both files in `dir`, creating `dir` (mode 0700) when needed.
    pub(crate) fn create(dir: &Path, host: &str) -> Result<Self, OutputError> {
        // Host names may hold ':' (ports) and '@' but never '/'; keep them readable.
        let safe: String = host
            .chars()
            .map(|c| if c == '/' || c == '\0' { '_' } else { c })
            .collect();
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(|source| OutputError {
                what: "create",
                path: dir.to_owned(),
                source,
            })?;
        let open = |ext: &str| {
            let path = dir.join(format!("{safe}.{ext}"));
            match wisp_secrets::files::open_for_output(&path) {
                Ok(f) => Ok((path, f)),
                Err(source) => Err(OutputError {
                    what: "create",
                    path,
                    source,
                }),
            }
        };
        Ok(Self {
            files: [open("stdout")?, open("stderr")?],
            failed: None,
        })
    }

    /// Appends a chunk of stream 0 (stdout) or 1 (stderr). After a failed write nothing more
    /// is written to that host's files; [`OutputFiles::finish`] reports it.
    pub(crate) fn write(&mut self, stream: usize, bytes: &[u8]) {
        use std::io::Write;
        if self.failed.is_some() {
            return;
        }
        let (path, file) = &mut self.files[stream];
        if let Err(source) = file.write_all(bytes) {
            self.failed = Some(OutputError {
                what: "write",
                path: path.clone(),
                source,
            });
        }
    }

    /// Flushes both files to disk; the first write or flush that failed, if any.
    pub(crate) fn finish(self) -> Result<(), OutputError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        for (path, file) in self.files {
            file.sync_data().map_err(|source| OutputError {
                what: "write",
                path,
                source,
            })?;
        }
        Ok(())
    }
}
