//! `service_facts` and `package_facts`: a POSIX script on the host prints what its init
//! system and package manager say as JSON, in Ansible's shape; a `set_fact` then puts it
//! under `ansible_facts.services` or `ansible_facts.packages`.

use super::args::{Args, Step};
use super::fetch::{script_step, text};
use crate::Located;

/// The name the script's output is registered under.
const GATHERED: &str = "__wisp_gathered";

/// Services as systemd (when it runs) or `service --status-all` lists them.
const SERVICES: &str = r#"set -u
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  { systemctl list-units --no-pager --type service --all --plain --no-legend 2>/dev/null
    echo '=='
    systemctl list-unit-files --no-pager --type service --no-legend 2>/dev/null; } |
  awk 'BEGIN { files = 0; n = 0 }
    $0 == "==" { files = 1; next }
    $1 !~ /\.service$/ { next }
    !files { st = $3; for (i = 2; i <= 4; i++) if ($i == "not-found" || $i == "masked" || $i == "failed") { st = $i; break }
      name[n++] = $1; state[$1] = ($4 == "running") ? "running" : "stopped"; status[$1] = st; next }
    { if (!($1 in state)) { name[n++] = $1; state[$1] = "inactive"; status[$1] = $2 }
      else if (status[$1] != "not-found" && status[$1] != "masked" && status[$1] != "failed") status[$1] = $2 }
    END { printf "{"; for (i = 0; i < n; i++) { s = name[i]
      printf "%s\"%s\": {\"name\": \"%s\", \"source\": \"systemd\", \"state\": \"%s\", \"status\": \"%s\"}", (i ? ", " : ""), s, s, state[s], status[s] }
      print "}" }'
elif command -v service >/dev/null 2>&1; then
  service --status-all 2>/dev/null |
  awk 'BEGIN { printf "{"; n = 0 }
    /^ *\[ [+-] \] / { s = $0; sub(/^ *\[ [+-] \] +/, "", s); gsub(/["\\]/, "", s)
      printf "%s\"%s\": {\"name\": \"%s\", \"source\": \"sysv\", \"state\": \"%s\"}", (n++ ? ", " : ""), s, s, ($2 == "+") ? "running" : "stopped" }
    END { print "}" }'
else
  echo '{}'
fi"#;

/// Installed packages as dpkg, rpm or apk list them.
const PACKAGES: &str = r#"set -u
list() {
  if command -v dpkg-query >/dev/null 2>&1; then
    dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\t${Section}\n' 2>/dev/null |
      awk -F'\t' '$1 ~ /^.i/ { print "apt\t" $2 "\t" $3 "\t" $4 "\t" $5 }'
  elif command -v rpm >/dev/null 2>&1; then
    rpm -qa --qf 'rpm\t%{NAME}\t%{VERSION}\t%{ARCH}\t%{RELEASE}\n' 2>/dev/null
  elif command -v apk >/dev/null 2>&1; then
    apk list --installed 2>/dev/null | awk '{ a = $2; n = $1; sub(/-[0-9].*$/, "", n); v = substr($1, length(n) + 2); print "apk\t" n "\t" v "\t" a "\t" }'
  fi; }
list | sort -t "$(printf '\t')" -k2,2 -s | awk -F'\t' '
  BEGIN { printf "{" }
  { gsub(/["\\]/, "", $0)
    if ($2 != last) { printf "%s\"%s\": [", (n++ ? "]," : ""), $2; sep = "" } else sep = ", "
    last = $2
    extra = ($1 == "apt") ? ", \"category\": \"" $5 "\"" : ($1 == "rpm") ? ", \"release\": \"" $5 "\"" : ""
    printf "%s{\"arch\": \"%s\"%s, \"name\": \"%s\", \"source\": \"%s\", \"version\": \"%s\"}", sep, $4, extra, $2, $1, $3 }
  END { print (n ? "]}" : "}") }'"#;

/// `service_facts` or `package_facts`: the script, then the facts set from what it printed.
pub(crate) fn gather(a: &mut Args<'_>, line: usize) -> Result<Vec<Step>, Located> {
    let (script, key) = match a.module {
        "service_facts" => (SERVICES, "services"),
        _ => {
            a.ignore(&["strategy"]);
            if let Some(v) = a.take(&["manager"])
                && !matches!(v.as_str(), Some("auto" | "apt" | "rpm" | "apk"))
            {
                return Err(super::refuse(
                    v.line,
                    "package_facts: manager must be auto, apt, rpm or apk",
                ));
            }
            (PACKAGES, "packages")
        }
    };
    // Registered under a name of its own: the task's `register` is the facts' step's.
    let mut read = script_step(script, Vec::new(), line);
    read.keys
        .retain(|(k, _)| k != "changed_when" && k != "register");
    read = read
        .key("changed_when", text(line, "false"))
        .key("register", text(line, GATHERED))
        .key("no_log", crate::source::Src::bool(line, true));
    read.own.push("no_log");
    read.name = Some(format!("{} (line {line})", a.module));
    let mut set = Step::op("set_fact", line).put(
        "ansible_facts",
        text(
            line,
            &format!(
                "{{{{ ansible_facts | combine({{'{key}': ({GATHERED}.stdout | from_json)}}) }}}}"
            ),
        ),
    );
    set.name = Some(format!("{} (line {line}): {key}", a.module));
    Ok(vec![read, set])
}
