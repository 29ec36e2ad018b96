//! `file` and `wait_for`: a path made a directory, a link, a hard link, touched or given its
//! mode and owner (recursively too), or waited for; each a POSIX shell script run on the
//! host with its inputs in the environment, that prints `changed` when it changed (or, in
//! check mode, would change) the host. Messages are Ansible's.

use super::args::{Args, Step, need};
use super::fetch::{env_of, flag, script_step, text};
use super::{Cx, refuse};
use crate::Located;
use crate::data::Data;
use crate::source::{Src, SrcValue};

/// `$P` made what `$S` says, then given `$M` (octal), `$O` and `$G`, recursively when `$R`.
const FILE: &str = r#"set -eu
ch=; dry() { ch=1; [ "$K" = true ]; }
fail() { echo "$*" >&2; exit 1; }
kind() { if [ -L "$1" ]; then echo link; elif [ -d "$1" ]; then echo directory
  elif [ -e "$1" ]; then echo file; else echo absent; fi; }
attrs() { h=; [ "$(kind "$1")" = link ] && h=-h
  if [ -n "$O" ] && [ "$(stat $h -c %U "$1")" != "$O" ] && [ "$(stat $h -c %u "$1")" != "$O" ]; then
    dry || chown $h "$O" "$1"; fi
  if [ -n "$G" ] && [ "$(stat $h -c %G "$1")" != "$G" ] && [ "$(stat $h -c %g "$1")" != "$G" ]; then
    dry || chgrp $h "$G" "$1"; fi
  if [ -n "$M" ] && [ -z "$h" ] && [ $((0$(stat -c %a "$1"))) -ne $((0$M)) ]; then
    dry || chmod "$M" "$1"; fi; }
tree() { [ "$R" = true ] || return 0
  if [ -n "$O" ] && [ -n "$(find "$P" -mindepth 1 ! -user "$O" -print -quit)" ]; then
    dry || find "$P" -mindepth 1 ! -user "$O" -exec chown -h "$O" {} +; fi
  if [ -n "$G" ] && [ -n "$(find "$P" -mindepth 1 ! -group "$G" -print -quit)" ]; then
    dry || find "$P" -mindepth 1 ! -group "$G" -exec chgrp -h "$G" {} +; fi
  if [ -n "$M" ] && [ -n "$(find "$P" -mindepth 1 ! -type l ! -perm "$M" -print -quit)" ]; then
    dry || find "$P" -mindepth 1 ! -type l ! -perm "$M" -exec chmod "$M" {} +; fi; }
was=$(kind "$P")
case "$S" in
directory)
  case $was in directory) ;; absent) dry || mkdir -p "$P" ;;
    *) fail "$P already exists as a $was" ;; esac
  [ -d "$P" ] && { attrs "$P"; tree; } ;;
file)
  [ "$was" = link ] && [ -e "$P" ] && was=$(kind "$(readlink -f "$P")")
  [ "$was" = file ] || fail "file ($P) is $was, cannot continue"
  attrs "$P" ;;
touch)
  if [ "$was" = absent ]; then dry || : > "$P"; else dry || touch "$P"; fi
  [ -e "$P" ] && attrs "$P"; ch=1 ;;
link)
  case $SRC in /*) abs=$SRC ;; *) d=$P; [ "$was" = directory ] || d=$(dirname "$P"); abs=$d/$SRC ;; esac
  [ "$F" = true ] || [ -e "$abs" ] || [ -L "$abs" ] ||
    fail "src file does not exist, use 'force=yes' if you really want to create the link: $abs"
  case $was in
  link) [ "$(readlink "$P")" = "$SRC" ] || { dry || ln -sfn "$SRC" "$P"; } ;;
  absent) dry || ln -s "$SRC" "$P" ;;
  directory) [ "$F" = true ] || fail "refusing to convert from directory to symlink for $P"
    [ -z "$(ls -A "$P")" ] || fail "the directory $P is not empty, refusing to convert it"
    dry || { rmdir "$P"; ln -s "$SRC" "$P"; } ;;
  *) [ "$F" = true ] || fail "refusing to convert from $was to symlink for $P"
    dry || ln -sfn "$SRC" "$P" ;;
  esac
  [ -L "$P" ] && attrs "$P" ;;
hard)
  [ -e "$SRC" ] || fail "src does not exist"
  if [ "$was" = absent ]; then dry || ln "$SRC" "$P"
  elif ! [ "$P" -ef "$SRC" ]; then
    if [ "$F" != true ]; then case $was in
      file) [ "$(stat -c %h "$P")" -gt 1 ] &&
          fail "Cannot link, different hard link exists at destination"
        fail "Cannot link, file exists at destination" ;;
      directory) fail "Cannot link: different hard link exists at destination" ;;
    esac; fi
    dry || ln -f "$SRC" "$P"
  fi
  [ -e "$P" ] && attrs "$P" ;;
esac
if [ -n "$ch" ]; then echo changed; else echo ok; fi"#;

/// `$PORT` listened on (or not, `$S` = `stopped`), or `$P` present (absent), within `$T`
/// seconds after `$D`, looked at every `$Z` seconds; `$RE` searched for in the file.
const WAIT_FOR: &str = r#"set -eu
[ "$K" = true ] && { echo ok; exit 0; }
sleep "$D"
listening() { h=$(printf '%04X' "$PORT")
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
    awk -v h=":$h" '$4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }'; }
there() { if [ -n "$PORT" ]; then listening; elif [ -n "$RE" ]; then
  [ -f "$P" ] && grep -Eq -- "$RE" "$P"; else [ -e "$P" ]; fi; }
i=0
while :; do
  case "$S" in stopped|absent) there || { echo ok; exit 0; } ;; *) there && { echo ok; exit 0; } ;; esac
  [ "$i" -ge "$T" ] && break
  sleep "$Z"; i=$((i + Z))
done
[ -n "$M" ] && { echo "$M" >&2; exit 1; }
if [ -n "$PORT" ]; then echo "Timeout when waiting for 127.0.0.1:$PORT" >&2
elif [ -n "$RE" ]; then echo "Timeout when waiting for search string $RE in $P" >&2
else echo "Timeout when waiting for file $P" >&2; fi
exit 1"#;

/// The check-mode flag of a script.
fn check(line: usize) -> (String, Src) {
    (
        "K".to_owned(),
        text(line, "{{ ansible_check_mode | string | lower }}"),
    )
}

/// `file`: `absent` and a plain `directory` are ops of their own; every other state (and
/// `recurse`) runs [`FILE`].
pub(crate) fn file(
    a: &mut Args<'_>,
    line: usize,
    cx: &Cx<'_>,
) -> Result<Option<Vec<Step>>, Located> {
    a.ignore(&[
        "follow",
        "unsafe_writes",
        "access_time",
        "modification_time",
    ]);
    a.ignore(&["access_time_format", "modification_time_format"]);
    let path = need(a, &["path", "dest", "name"], line)?;
    let state = match a.text(&["state"])? {
        Some((s, _)) => s,
        None if a.map.iter().any(|(k, _)| k == "src") => "link".into(),
        None => "file".into(),
    };
    let recurse = matches!(a.flag(&["recurse"]), Some(Ok(true)));
    if recurse && state != "directory" {
        return Err(refuse(line, "file: recurse needs state: directory"));
    }
    let step = match state.as_str() {
        "directory" if !recurse => {
            let s = Step::op("dir.ensure", line).put("path", path).put(
                "make_parents",
                Src {
                    line,
                    value: SrcValue::Scalar(Data::Bool(true)),
                },
            );
            a.attrs(s, false)?
        }
        "absent" => Step::op("file.absent", line).put("path", path).put(
            "recursive",
            Src {
                line,
                value: SrcValue::Scalar(Data::Bool(true)),
            },
        ),
        "directory" | "file" | "touch" | "link" | "hard" => {
            let src = match state.as_str() {
                "link" | "hard" => need(a, &["src"], line)?,
                _ => text(line, ""),
            };
            let mode = env_of(a, &["mode"], "", line)?;
            if let Some(m) = mode.as_str()
                && !crate::data::is_template(m)
                && !m.bytes().all(|b| (b'0'..=b'7').contains(&b))
            {
                cx.unsupported(mode.line, &format!("file: mode {m:?} (give it in octal)"))?;
            }
            let env = vec![
                ("P".to_owned(), path),
                ("S".to_owned(), text(line, &state)),
                ("SRC".to_owned(), src),
                ("M".to_owned(), mode),
                ("O".to_owned(), env_of(a, &["owner"], "", line)?),
                ("G".to_owned(), env_of(a, &["group"], "", line)?),
                ("F".to_owned(), flag(a, "force", line)),
                (
                    "R".to_owned(),
                    text(line, if recurse { "true" } else { "false" }),
                ),
                check(line),
            ];
            script_step(FILE, env, line)
        }
        other => {
            cx.unsupported(line, &format!("file with state: {other}"))?;
            return Ok(None);
        }
    };
    Ok(Some(vec![step]))
}

/// `wait_for` on this host: a `port` listened on (`host` must be this host), or a `path`
/// (with `search_regex`); `state`, `timeout`, `delay`, `sleep`, `msg`.
pub(crate) fn wait_for(a: &mut Args<'_>, line: usize) -> Result<Vec<Step>, Located> {
    a.ignore(&["connect_timeout", "active_connection_states"]);
    if let Some((host, at)) = a.text(&["host"])?
        && !matches!(
            host.as_str(),
            "127.0.0.1" | "localhost" | "0.0.0.0" | "::1" | "::"
        )
    {
        return Err(refuse(
            at,
            format!(
                "wait_for: host {host}: only ports of the host itself are waited for; \
                 use command with a retries/until loop"
            ),
        ));
    }
    let port = env_of(a, &["port"], "", line)?;
    let path = env_of(a, &["path"], "", line)?;
    if port.as_str() == Some("") && path.as_str() == Some("") {
        return Err(refuse(line, "wait_for needs port or path"));
    }
    let mut state = env_of(a, &["state"], "started", line)?;
    if state.as_str() == Some("present") {
        state = text(line, "started");
    }
    if let Some(s) = state.as_str()
        && !matches!(s, "started" | "stopped" | "absent")
    {
        return Err(refuse(
            state.line,
            format!("wait_for: state {s} (started, present, stopped and absent are read)"),
        ));
    }
    let mut env = vec![
        ("PORT".to_owned(), port),
        ("P".to_owned(), path),
        ("S".to_owned(), state),
        ("RE".to_owned(), env_of(a, &["search_regex"], "", line)?),
        ("T".to_owned(), env_of(a, &["timeout"], "300", line)?),
        ("D".to_owned(), env_of(a, &["delay"], "0", line)?),
        ("Z".to_owned(), env_of(a, &["sleep"], "1", line)?),
        ("M".to_owned(), env_of(a, &["msg"], "", line)?),
    ];
    env.push(check(line));
    let mut step = script_step(WAIT_FOR, env, line);
    // Waiting changes nothing, and is as safe in check mode as out of it.
    step.keys.retain(|(k, _)| k != "changed_when");
    step = step.key("changed_when", text(line, "false"));
    Ok(vec![step])
}
