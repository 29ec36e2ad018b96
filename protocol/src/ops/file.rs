//! The file ops: `file.write`, `dir.ensure`, `file.absent`, `file.stat`, their arguments
//! and what they report.

use serde::{Deserialize, Serialize};

use super::{OpError, check_path};

/// Declares an args struct for an op that creates a path, with the fields every such op
/// shares (path, mode, owner, group, parents, check) and its own.
macro_rules! creating_args {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty = $skip:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Absolute path.
            pub path: String,
            /// Permission bits as octal text (`"0644"`); kept as they are when absent (new
            /// files: 0644, new directories: 0755).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub mode: Option<String>,
            /// Owner, a user name or a numeric uid; kept when absent (new: the runner's user).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub owner: Option<String>,
            /// Group, a name or a numeric gid; kept when absent.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub group: Option<String>,
            /// Create missing parent directories (0755, the runner's user).
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub make_parents: bool,
            /// Check mode: report what would change, change nothing.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub check: bool,
            $($(#[$fdoc])* #[serde(default, skip_serializing_if = $skip)] pub $field: $ty,)*
        }

        impl $name {
            pub(super) fn validate(&self, op: &str) -> Result<(), OpError> {
                check_path(op, &self.path)?;
                if self.path.len() > 1 && self.path.ends_with('/') {
                    return Err(OpError::BadArgs(format!(
                        "{op} args: path {:?} ends with `/`",
                        self.path
                    )));
                }
                if let Some(m) = &self.mode
                    && self.mode_bits().is_none()
                {
                    return Err(OpError::BadArgs(format!(
                        "{op} args: mode {m:?} is not octal like \"0644\""
                    )));
                }
                Ok(())
            }

            /// The mode as permission bits (`0o7777` at most).
            pub fn mode_bits(&self) -> Option<u32> {
                let m = self.mode.as_deref().filter(|m| !m.is_empty())?;
                u32::from_str_radix(m, 8).ok().filter(|b| *b <= 0o7777)
            }
        }
    };
}

creating_args! {
    /// Arguments of `file.write`. The content is the CMD's data section.
    FileWriteArgs {
        /// Keep the previous version as `PATH.<unix seconds>.bak` when the content changes.
        backup: bool = "std::ops::Not::not",
        /// Send the previous content back (DONE's data section) when it changes and is text
        /// of at most 1 MiB, for a diff.
        diff: bool = "std::ops::Not::not",
        /// The content's total length when it is larger than the CMD's data section: the rest
        /// follows in DATA frames for this id, and the file is written once all has come.
        size: Option<u64> = "Option::is_none",
        /// Write only if what is at the path still has this [`FileStat::stamp`] (`none`: if
        /// nothing is there): an edit made from a read never overwrites a change made since.
        if_stamp: Option<String> = "Option::is_none",
    }
}

creating_args! {
    /// Arguments of `dir.ensure`.
    DirEnsureArgs {}
}

/// Arguments of `file.stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// Absolute path.
    pub path: String,
    /// Also send a regular file's content (DONE's data section) when it has at most this
    /// many bytes; a larger file is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<u64>,
}

/// Arguments of `file.absent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAbsentArgs {
    /// Absolute path.
    pub path: String,
    /// Also remove a directory and everything in it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recursive: bool,
    /// Check mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
}

/// What a file op found and did, in DONE's `result`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileResult {
    /// The path.
    pub path: String,
    /// What was there before: `file`, `dir`, `symlink`, `other`, or `none`.
    pub before: String,
    /// What changed (or would, in check mode): `created`, `content`, `mode`, `owner`, `group`,
    /// `removed`. Empty when nothing did.
    pub changes: Vec<String>,
    /// The backup made of the previous version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The previous content travels in the data section (diff asked, text, changed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub previous_content: bool,
}

/// The result of `file.stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// The path.
    pub path: String,
    /// `file`, `dir`, `symlink`, `other`, or `none`.
    pub kind: String,
    /// Permission bits as octal text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Owner uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group gid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Modification time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// Where a symlink points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What tells this version of the file from any later one (`INODE:SIZE:CTIME`), for
    /// `file.write`'s `if_stamp`; `none` when nothing is there.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stamp: String,
}
