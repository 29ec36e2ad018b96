//! `file.write` content that arrives in DATA frames after its CMD: each part goes straight
//! into the write under way (compared with the old file, written beside it), so the runner
//! holds one part at a time; the file is replaced once the announced size has come. Dropped
//! with an ERROR when it stops coming, and then nothing is left behind.

use super::*;

/// A `file.write` waiting for the rest of its content.
pub(super) struct Upload {
    /// The write under way, or why it cannot be done (reported once all content has come).
    pub(super) writing: Result<crate::ops::Writing, String>,
    pub(super) received: usize,
    pub(super) size: usize,
    pub(super) started: Instant,
    /// Dropped, with an ERROR, when no DATA comes before this.
    pub(super) idle_deadline: Instant,
}

impl Session {
    /// More content for a `file.write`; the file is written once all of it has come.
    pub(super) fn on_data(&mut self, id: String, bytes: Vec<u8>) {
        let Some(upload) = self.uploads.get_mut(&id) else {
            return self.error(
                Some(id),
                ErrorCode::UnknownId,
                "DATA for no file.write waiting for content",
            );
        };
        if upload.received + bytes.len() > upload.size {
            let size = upload.size;
            self.uploads.remove(&id);
            return self.error(
                Some(id),
                ErrorCode::BadFrame,
                format!("DATA beyond the announced size of {size} bytes; nothing was written"),
            );
        }
        upload.received += bytes.len();
        if let Ok(w) = &mut upload.writing
            && let Err(e) = w.push(&bytes)
        {
            upload.writing = Err(e);
        }
        upload.idle_deadline = Instant::now() + self.config.upload_idle;
        if upload.received == upload.size
            && let Some(upload) = self.uploads.remove(&id)
        {
            self.write_file(id, upload);
        }
    }

    pub(super) fn write_file(&mut self, id: String, upload: Upload) {
        let outcome = upload.writing.and_then(crate::ops::Writing::finish);
        self.finish_file_op(id, upload.started, outcome);
    }
}
