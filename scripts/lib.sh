# shellcheck shell=bash
# Shared helpers for the scripts in this folder. Source it; it is not a program.
# Callers set ME (the name used in messages) before sourcing.

: "${ME:=$(basename "$0")}"
say() { printf '%s: %s\n' "$ME" "$*"; }
warn() { printf '%s: WARNING: %s\n' "$ME" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$ME" "$*" >&2; exit 1; }

# Where downloaded tools and venvs live: outside the repo, so a fresh clone (CI) reuses them.
KAFKA_CONN_CACHE="${KAFKA_CONN_CACHE:-$HOME/.cache/kafka-conn}"

# apt_install PKG...: install Debian packages (root, or passwordless sudo). A fresh machine
# has empty package lists, so `apt-get update` runs only when the first attempt fails.
apt_install() {
  local sudo="" log
  log="$(mktemp "${TMPDIR:-/tmp}/kafka-conn-apt.XXXXXX")"
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"
    else die "need the Debian package(s) $*: run 'apt-get install $*' as root"; fi
  fi
  command -v apt-get >/dev/null || die "need $* but apt-get is not available (not Debian?)"
  say "apt-get install $*"
  # shellcheck disable=SC2086
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1; then
    # shellcheck disable=SC2086
    { DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"; } >>"$log" 2>&1 \
      || { tail -20 "$log" >&2; die "apt-get install $* failed (full log: $log)"; }
  fi
  rm -f "$log"
}

# make_venv DIR: python3 -m venv, installing Debian's python3-venv first if that is what's missing.
make_venv() {
  command -v python3 >/dev/null || apt_install python3 python3-venv
  if ! python3 -m venv "$1" >/dev/null 2>&1; then
    rm -rf "$1"
    apt_install python3-venv
    python3 -m venv "$1" || die "python3 -m venv $1 failed"
  fi
}

# listener_pid HOST:PORT: the pid of the local process listening on PORT (a broker the
# benchmark scripts pin or measure); dies if there is none.
listener_pid() {
  command -v ss >/dev/null || die "ss (iproute2) is missing"
  local port="${1##*:}" pid
  pid="$(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)" || true
  [ -n "$pid" ] || die "no process of ours listens on port $port (is $1 local?)"
  echo "$pid"
}

# median: the median of the numbers on stdin, one per line (the mean of the middle two
# for an even count).
median() {
  sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# The tools' usual homes, for a shell that has not sourced ~/.cargo/env or ~/.profile.
tool_path() {
  export PATH="$HOME/.cargo/bin:${KAFKA_CONN_BIN_DIR:+$KAFKA_CONN_BIN_DIR:}$HOME/.local/bin:$KAFKA_CONN_CACHE/tools-venv/bin:$PATH"
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first (https://rustup.rs), then run this again"
}

# ensure_test_tools ROOT: run scripts/install-tools when a tool of scripts/test (or the
# `just` that runs it) is missing, e.g. on a fresh machine; nothing otherwise.
ensure_test_tools() {
  tool_path
  local missing=()
  cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
  command -v just >/dev/null || missing+=(just)
  if [ -f "$1/fuzz/Cargo.toml" ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo fuzz --version >/dev/null 2>&1 || missing+=(cargo-fuzz)
  fi
  [ "${#missing[@]}" = 0 ] && return 0
  say "missing ${missing[*]}: running scripts/install-tools first (once)"
  "$1/scripts/install-tools"
  tool_path
}
