//! `--output-dir`: each host's stdout and stderr, byte for byte, in `<host>.stdout` and
//! `<host>.stderr`.

use std::path::{Path, PathBuf};

/// A file or folder of `--output-dir` that could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create {}", path.display())]
pub(crate) struct CreateError {
    path: PathBuf,
    source: std::io::Error,
}

/// The two files of one host.
pub(crate) struct OutputFiles {
    files: [std::fs::File; 2],
}

impl OutputFiles {
    /// Creates (truncates) both files in `dir`, creating `dir` when needed.
    pub(crate) fn create(dir: &Path, host: &str) -> Result<Self, CreateError> {
        // Host names may hold ':' (ports) and '@' but never '/'; keep them readable.
        let safe: String = host
            .chars()
            .map(|c| if c == '/' || c == '\0' { '_' } else { c })
            .collect();
        std::fs::create_dir_all(dir).map_err(|source| CreateError {
            path: dir.to_owned(),
            source,
        })?;
        let open = |ext: &str| {
            let path = dir.join(format!("{safe}.{ext}"));
            std::fs::File::create(&path).map_err(|source| CreateError { path, source })
        };
        Ok(Self {
            files: [open("stdout")?, open("stderr")?],
        })
    }

    /// Appends a chunk of stream 0 (stdout) or 1 (stderr).
    pub(crate) fn write(&mut self, stream: usize, bytes: &[u8]) {
        use std::io::Write;
        let _ = self.files[stream].write_all(bytes);
    }
}
