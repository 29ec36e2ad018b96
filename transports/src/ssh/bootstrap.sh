# The bootstrap script (see bootstrap.rs): sent on the channel's stdin and run by `sh`.
# POSIX sh only; no single quote inside `asroot` (it travels single-quoted under sudo).
n="$1"; ttl="$2"; become="$3"
um=$(umask); umask 077; unset CDPATH
d=""
fail() { echo "wisp-bootstrap: $2" >&2; [ -n "$d" ] && rm -rf "$d"; exit "$1"; }
trap '[ -n "$d" ] && rm -rf "$d"; exit 70' HUP INT TERM PIPE
drop() { i=0; while [ "$i" -lt "$1" ]; do IFS= read -r _ || break; i=$((i + 1)); done; }
sums="if command -v sha256sum >/dev/null 2>&1; then s=\$(sha256sum \"\$1\")
elif command -v shasum >/dev/null 2>&1; then s=\$(shasum -a 256 \"\$1\")
elif command -v openssl >/dev/null 2>&1; then s=\$(openssl dgst -sha256 -r \"\$1\")
else return 1; fi; have=\${s%% *}"
eval "sum() { $sums; }"
me=""
while read -r k _ me _; do [ "$k" = Uid: ] && break; me=""; done < /proc/self/status
[ -n "$me" ] || me=$(id -u)
safe() {
  p=$1; set -- /
  while [ -n "$p" ] && [ "$p" != / ]; do set -- "$@" "$p"; p=${p%/*}; done
  bad=$(find "$@" -maxdepth 0 \( -perm /022 ! -perm -1000 \) -o \( ! -user 0 ! -user "$me" \) 2>/dev/null) && [ -z "$bad" ]
}
asroot="umask 077
if [ \"\$1\" = --reopen ]; then exec </proc/\$2/fd/7 >/proc/\$2/fd/8 2>/proc/\$2/fd/9; shift 2; fi
f=\$1; want=\$2; sum() { $sums; }
gone() { rm -f \"\$f\"; rmdir \"\${f%/*}\" 2>/dev/null; }
no() { echo \"wisp-bootstrap: \$2\" >&2; [ -n \"\$r\" ] && rm -rf \"\$r\"; gone; exit \$1; }
for b in /run /tmp /dev/shm /var/tmp ~root; do
  [ -d \"\$b\" ] && [ -O \"\$b\" ] || continue
  [ \"\$b\" = /run ] || [ -k \"\$b\" ] || [ ! -L \"\$b\" -a \"\$b\" = ~root ] || continue
  r=\$(mktemp -d \"\$b/wisp-root-XXXXXXXXXX\" 2>/dev/null) || continue
  cp \"\$f\" \"\$r/wisp-runner\" || { rm -rf \"\$r\"; r=; continue; }
  sum \"\$r/wisp-runner\" || no 67 \"no sha256sum, shasum or openssl for root\"
  [ \"\$have\" = \"\$want\" ] || no 65 \"the runner changed after it was checked (SHA-256 \$have, not \$want): refusing to run it as root\"
  chmod 700 \"\$r/wisp-runner\"
  if \"\$r/wisp-runner\" --version >/dev/null 2>&1; then gone; shift 2; umask $um; exec \"\$r/wisp-runner\" \"\$@\" --private-dir \"\$r\"; fi
  rm -rf \"\$r\"; r=
done
no 66 \"no directory owned by root with room that allows execution (tried /run, /tmp, /dev/shm, /var/tmp, ~root)\""
tool=""; pw=""; ask=""
case "$become" in
  sudo) tool=sudo;;
  sudo-pass) tool=sudo; pw=yes;;
  doas) tool=doas;;
  su-pass) tool=su; pw=yes;;
esac
tty=""
intty() { SHELL=/bin/sh script -qec "$1" /dev/null; }
if [ "$tool" = su ]; then
  # su asks for root's password on a terminal, always.
  command -v su >/dev/null 2>&1 || fail 68 "--become: there is no su on this host"
  command -v script >/dev/null 2>&1 || fail 68 "--become: su wants a terminal and this host has no script(1) to give it one"
  command -v mkfifo >/dev/null 2>&1 || fail 68 "--become: su needs mkfifo on this host"
  tty=yes; ask=yes
elif [ -n "$tool" ]; then
  command -v "$tool" >/dev/null 2>&1 || fail 68 "--become: there is no $tool on this host"
  if why=$(LC_ALL=C "$tool" -n true 2>&1 </dev/null); then :
  else
    case "$tool/$why" in
      sudo/*"must have a tty"*)
        command -v script >/dev/null 2>&1 || fail 68 "--become: sudo wants a terminal (requiretty) and this host has no script(1) to give it one"
        tty=yes
        why="sudo wants a terminal (requiretty), and on one it wants a password: give --ask-become-pass"
        intty "sudo -n true" </dev/null >/dev/null 2>&1 && why="";;
    esac
    if [ -z "$why" ]; then :
    elif [ -n "$pw" ]; then ask=yes
    else fail 68 "--become: $tool -n refused: $why"
    fi
  fi
fi
arch=""
read -r arch 2>/dev/null < /proc/sys/kernel/arch
[ -n "$arch" ] || arch=$(uname -m)
case "$arch" in arm64|aarch64_be) arch=aarch64;; amd64) arch=x86_64;; esac
zip=raw; command -v gzip >/dev/null 2>&1 && zip=gz
tries=0
while :; do
  read -r a enc size want raw || fail 64 "no upload header"
  if [ "$a" = "$arch" ] && { [ "$enc" = raw ] || [ "$zip" = gz ]; }; then
    printf "WISP-ARCH %s %s %s take\n" "$n" "$arch" "$zip"; break
  fi
  [ "$tries" = 0 ] || fail 65 "the upload is for $a ($enc), and this host is $arch ($zip)"
  tries=1
  printf "WISP-ARCH %s %s %s resend\n" "$n" "$arch" "$zip"
  head -c "$size" > /dev/null
  [ -z "$pw" ] || drop 2
done
need=$(( ${raw:-2097152} / 1024 + 64 ))
room() {
  command -v df >/dev/null 2>&1 || return 0
  free=$(df -Pk "$1" 2>/dev/null | { read -r _; read -r _ _ _ a _; echo "$a"; })
  case "$free" in ''|*[!0-9]*) return 0;; esac
  [ "$free" -ge "$need" ]
}
root=""; [ "$me" = 0 ] && root=/run
src=""; tried=""
for base in "${TMPDIR:-}" /tmp /var/tmp /dev/shm "${XDG_RUNTIME_DIR:-}" $root "${HOME:+$HOME/.cache}" "${HOME:-}"; do
  [ -n "$base" ] && [ -d "$base" ] && [ -w "$base" ] || continue
  case " $tried " in *" $base "* | *" $base("*) continue;; esac
  tried="$tried $base"
  if { [ "$base" = /tmp ] || [ "$base" = /var/tmp ] || [ "$base" = /dev/shm ]; } && [ -k "$base" ] && [ ! -L "$base" ]; then :
  else safe "$(cd -P -- "$base" 2>/dev/null && pwd -P)" || { tried="$tried(unsafe)"; continue; }
  fi
  room "$base" || { tried="$tried(full)"; continue; }
  d=$(mktemp -d "$base/wisp-XXXXXXXXXX" 2>/dev/null) || { tried="$tried(mktemp)"; continue; }
  f="$d/wisp-runner"
  if [ -z "$src" ]; then
    if [ "$enc" = gz ]; then
      head -c "$size" | gzip -dc > "$f" || fail 65 "cannot write the runner into $d (disk full?), or the upload does not decompress: refusing to run it"
    else
      head -c "$size" > "$f" || fail 65 "cannot write the runner into $d (disk full?)"
    fi
    sum "$f" || fail 67 "no sha256sum, shasum or openssl on this host: cannot verify the upload"
    [ "$have" = "$want" ] || fail 65 "upload SHA-256 $have does not match the announced $want: refusing to run it"
    if [ -n "$ask" ] && [ -n "$tty" ]; then
      # requiretty: one sudo, on a terminal, takes the password and starts the runner.
      IFS= read -r line || fail 68 "no sudo password line"; drop 1
    elif [ -n "$ask" ]; then
      IFS= read -r line || fail 68 "no sudo password line"
      why=$(printf "%s\n" "$line" | sudo -S -p "" -v 2>&1 >/dev/null); ok=$?; line=""
      [ "$ok" = 0 ] || fail 68 "--become: sudo refused: $why"
      if sudo -n true 2>/dev/null </dev/null; then drop 1; ask=""; fi
    elif [ -n "$pw" ]; then drop 2
    fi
  else
    cp "$src" "$f" || { rm -rf "$d"; d=""; continue; }
    rm -rf "${src%/*}"
  fi
  chmod 700 "$f"
  if "$f" --version >/dev/null 2>&1; then
    # Staged: what the runner does runs with the login's umask, as a login's commands do.
    [ -n "$tool" ] || { umask "$um"; exec "$f" --marker "$n" --ttl "$ttl" --private-dir "$d"; }
    if [ -n "$tty" ]; then
      # sudo gets a terminal of its own (script); root takes this channel back from this
      # shell's descriptors 7, 8 and 9 (copies made here, closed again after: no other
      # program of the session inherits them), and the terminal carries nothing of it.
      run="sh -c '$asroot' wisp-root --reopen $$ $f $want --marker $n --ttl $ttl"
      exec 7<&0 8>&1 9>&2
      if [ "$tool" = su ]; then
        # su (through PAM) drops what was typed before its prompt: the password goes to the
        # terminal once the prompt is there. The root script travels in the environment.
        mkfifo -m 600 "$d/in" || fail 68 "--become: cannot make a FIFO in $d"
        WISP_ROOT_SCRIPT=$asroot; export WISP_ROOT_SCRIPT
        intty "su -s /bin/sh root -c 'sh -c \"\$WISP_ROOT_SCRIPT\" wisp-root --reopen $$ $f $want --marker $n --ttl $ttl'" <"$d/in" >"$d/out" 2>&1 &
        job=$!
        unset WISP_ROOT_SCRIPT
        exec 6>"$d/in"
        i=0
        while [ "$i" -lt 100 ] && ! grep -q ':' "$d/out" 2>/dev/null; do sleep 0.1 2>/dev/null || sleep 1; i=$((i + 1)); done
        printf "%s\n" "$line" >&6; line=""
        exec 6>&-
        wait "$job"; rc=$?
        [ "$rc" = 0 ] || fail 68 "--become: su ended with status $rc: $(tr -d '\r' <"$d/out" | tr '\n' ' ')"
      elif [ -n "$ask" ]; then
        printf "%s\n" "$line" | intty "sudo -S -p '' -- $run" >/dev/null 2>&1; rc=$?; line=""
      else
        intty "sudo -n -- $run" </dev/null >/dev/null 2>&1; rc=$?
      fi
      exec 7<&- 8>&- 9>&-
      rm -rf "$d"; d=""
      [ "$rc" = 0 ] || fail 68 "--become: $tool on a terminal ended with status $rc: a wrong password?"
      exit 0
    fi
    if [ -n "$ask" ]; then
      sudo -S -p "" -- sh -c "$asroot" wisp-root "$f" "$want" --marker "$n" --ttl "$ttl"
    else
      "$tool" -n -- sh -c "$asroot" wisp-root "$f" "$want" --marker "$n" --ttl "$ttl"
    fi
    rc=$?; rm -rf "$d"; d=""
    exit "$rc"
  fi
  src="$f"; d=""; tried="$tried(noexec)"
done
[ -n "$src" ] && rm -rf "${src%/*}"
d=""
fail 66 "no writable location with room that allows execution (tried:$tried)"
