//! `get_url` and `unarchive` as commands the host runs: a POSIX shell script with its inputs
//! in the environment (never in the script's text, so no value is ever read as shell), that
//! downloads with the host's curl or wget into a temporary file beside the target, checks the
//! checksum, and puts the file in place only when it differs; or unpacks an archive with the
//! host's tar or unzip unless `creates` exists or tar finds nothing different. In check mode
//! the script only looks. It prints `changed` when it changed (or would change) the host.

use super::args::{Args, PRIVATE_RESULT, Step, need};
use super::refuse;
use crate::Located;
use crate::data::Data;
use crate::source::{Src, SrcValue};

/// Downloads `$U` to `$D` (a folder: its file named as the URL's last part).
const GET_URL: &str = r#"set -eu
d=$D; [ -d "$d" ] && d="$d/${U##*/}"
sum() { [ -z "$C" ] && return 0; a=${C%%:*}; want=${C#*:}
  have=$("${a}sum" "$1" 2>/dev/null | cut -d' ' -f1) || { echo "no ${a}sum on this host" >&2; exit 2; }
  [ "$have" = "$want" ]; }
if [ -e "$d" ] && [ "$F" != true ] && sum "$d"; then echo ok; exit 0; fi
if [ "$K" = true ]; then echo changed; exit 0; fi
t=$(mktemp "$d.XXXXXX")
trap 'rm -f "$t"' EXIT
if command -v curl >/dev/null 2>&1; then curl -fsSL --max-time "$T" -o "$t" "$U"
elif command -v wget >/dev/null 2>&1; then wget -q -T "$T" -O "$t" "$U"
else echo "no curl or wget on this host" >&2; exit 2; fi
sum "$t" || { echo "$U: checksum $C does not match" >&2; exit 1; }
if [ -e "$d" ] && cmp -s "$t" "$d"; then echo ok; exit 0; fi
[ -n "$M" ] && chmod "$M" "$t"; [ -n "$O" ] && chown "$O" "$t"
[ -z "$M" ] && [ -e "$d" ] && chmod "$(stat -c %a "$d")" "$t"
[ -z "$M" ] && [ ! -e "$d" ] && chmod 644 "$t"
mv -f "$t" "$d"; trap - EXIT; echo changed"#;

/// Unpacks `$S` (on the host) into the folder `$D`.
const UNARCHIVE: &str = r#"set -eu
[ -n "$CR" ] && [ -e "$CR" ] && { echo ok; exit 0; }
[ -d "$D" ] || { echo "$D is not a folder" >&2; exit 1; }
case "$S" in
  *.zip) [ "$K" = true ] && { echo changed; exit 0; }
    unzip -o -q "$S" -d "$D"; echo changed ;;
  *) if tar -df "$S" -C "$D" >/dev/null 2>&1; then echo ok; exit 0; fi
    [ "$K" = true ] && { echo changed; exit 0; }
    tar -xf "$S" -C "$D" ${O:+--owner="$O"}; echo changed ;;
esac"#;

pub(crate) fn text(line: usize, s: &str) -> Src {
    Src::text(line, s)
}

/// The exec step running `script` with `env`, changed when it says so.
pub(crate) fn script_step(script: &str, env: Vec<(String, Src)>, line: usize) -> Step {
    let argv = Src::list(
        line,
        vec![text(line, "/bin/sh"), text(line, "-c"), text(line, script)],
    );
    let mut s = Step::op("exec", line)
        .put("argv", argv)
        .put("env", Src::map(line, env))
        .key(
            "changed_when",
            text(line, "__wisp_fetch.stdout == 'changed'"),
        )
        .key(
            "check_mode",
            Src {
                line,
                value: SrcValue::Scalar(Data::Bool(false)),
            },
        )
        .key("register", text(line, PRIVATE_RESULT));
    s.own = vec!["changed_when", "check_mode", "register"];
    s
}

/// A text arg (or its default) as an env value.
pub(crate) fn env_of(
    a: &mut Args<'_>,
    names: &[&str],
    default: &str,
    line: usize,
) -> Result<Src, Located> {
    Ok(match a.take(names) {
        Some(v) => match &v.value {
            SrcValue::Decimal(n) if names[0] == "mode" => text(v.line, &format!("{n:04o}")),
            SrcValue::Decimal(n) => text(v.line, &n.to_string()),
            SrcValue::Scalar(Data::Bool(b)) => text(v.line, if *b { "true" } else { "false" }),
            _ => v,
        },
        None => text(line, default),
    })
}

/// A yes/no arg as `true` or `false` for a script (a template rendered to either).
pub(crate) fn flag(a: &mut Args<'_>, name: &str, line: usize) -> Src {
    match a.flag(&[name]) {
        None | Some(Ok(false)) => text(line, "false"),
        Some(Ok(true)) => text(line, "true"),
        Some(Err(v)) => super::args::bool_template(&v, " | string | lower"),
    }
}

pub(crate) fn owner(a: &mut Args<'_>, line: usize) -> Result<Src, Located> {
    let o = env_of(a, &["owner"], "", line)?;
    let g = env_of(a, &["group"], "", line)?;
    Ok(match (o.as_str(), g.as_str()) {
        (Some(""), Some("")) => text(line, ""),
        _ => text(
            line,
            &format!("{}:{}", o.as_str().unwrap_or(""), g.as_str().unwrap_or("")),
        ),
    })
}

/// `get_url`: `url`, `dest`, `checksum` (`ALGO:HEX`), `force`, `mode`, `owner`, `group`,
/// `timeout`.
pub(crate) fn get_url(a: &mut Args<'_>, line: usize) -> Result<Vec<Step>, Located> {
    a.ignore(&["validate_certs", "use_proxy"]);
    let env = vec![
        ("U".to_owned(), need(a, &["url"], line)?),
        ("D".to_owned(), need(a, &["dest"], line)?),
        ("C".to_owned(), env_of(a, &["checksum"], "", line)?),
        ("F".to_owned(), flag(a, "force", line)),
        ("M".to_owned(), env_of(a, &["mode"], "", line)?),
        ("O".to_owned(), owner(a, line)?),
        ("T".to_owned(), env_of(a, &["timeout"], "10", line)?),
        (
            "K".to_owned(),
            text(line, "{{ ansible_check_mode | string | lower }}"),
        ),
    ];
    Ok(vec![script_step(GET_URL, env, line)])
}

/// `unarchive` of a file on the host (`remote_src: true`): `src`, `dest`, `creates`, `owner`.
pub(crate) fn unarchive(a: &mut Args<'_>, line: usize) -> Result<Vec<Step>, Located> {
    let remote = matches!(a.flag(&["remote_src"]), Some(Ok(true)));
    if !remote {
        return Err(refuse(
            line,
            "unarchive of a file on this machine is not supported yet; copy it first and \
             give remote_src: true, or fetch it with get_url",
        ));
    }
    let mut env = vec![
        ("S".to_owned(), need(a, &["src"], line)?),
        ("D".to_owned(), need(a, &["dest"], line)?),
        ("CR".to_owned(), env_of(a, &["creates"], "", line)?),
        ("O".to_owned(), env_of(a, &["owner"], "", line)?),
    ];
    env.push((
        "K".to_owned(),
        text(line, "{{ ansible_check_mode | string | lower }}"),
    ));
    Ok(vec![script_step(UNARCHIVE, env, line)])
}
