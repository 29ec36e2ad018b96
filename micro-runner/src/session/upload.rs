//! `file.write` content that arrives in DATA frames after its CMD: gathered per id up to
//! the announced size, then written; dropped with an ERROR when it stops coming.

use super::*;

/// A `file.write` waiting for the rest of its content.
pub(super) struct Upload {
    pub(super) args: wisp_protocol::ops::FileWriteArgs,
    pub(super) content: Vec<u8>,
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
        if upload.content.len() + bytes.len() > upload.size {
            let size = upload.size;
            self.uploads.remove(&id);
            return self.error(
                Some(id),
                ErrorCode::BadFrame,
                format!("DATA beyond the announced size of {size} bytes; nothing was written"),
            );
        }
        upload.content.extend_from_slice(&bytes);
        upload.idle_deadline = Instant::now() + self.config.upload_idle;
        if upload.content.len() == upload.size
            && let Some(upload) = self.uploads.remove(&id)
        {
            self.write_file(id, upload);
        }
    }

    pub(super) fn write_file(&mut self, id: String, upload: Upload) {
        self.next_serial += 1;
        let outcome = crate::ops::write(&upload.args, &upload.content);
        self.finish_file_op(id, upload.started, outcome);
    }
}
