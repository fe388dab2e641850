# shellcheck shell=bash
# Shared helpers of kiln's source service programs (ops/services/*).
#
# Sourced by every service after `set -euo pipefail`. It sets SERVICE (the program's name), parses the
# OBS calling convention `--outdir DIR --<param> <value> ...` into PARAMS, and offers validation and
# output helpers. Nothing here evaluates parameter text as code.

SERVICE="${0##*/}"
umask 022
export LC_ALL=C
export TZ=UTC

# Exit codes: 1 = the service ran and failed (download error, checksum mismatch, ...),
# 2 = it was called wrongly (unknown, missing or invalid parameter).
readonly EXIT_FAIL=1
readonly EXIT_USAGE=2

# One line on stderr, prefixed with the service's name; control characters are shown as '?'.
_oneline() {
  local s="$*"
  s="${s//[[:cntrl:]]/?}"
  printf '%s: %s\n' "$SERVICE" "$s" >&2
}
die() {
  _oneline "$@"
  exit "$EXIT_FAIL"
}
usage_error() {
  _oneline "$@"
  exit "$EXIT_USAGE"
}
info() {
  local s="$*"
  printf '%s: %s\n' "$SERVICE" "${s//[[:cntrl:]]/?}"
}

# Parameters: PARAMS[name] holds every value given for --name, each followed by a newline (values
# containing control characters are refused, so the newline separator is unambiguous).
declare -A PARAMS=()
OUTDIR=""
TMPROOT=""

# parse_params ALLOWED_NAMES... -- "$@"
# Every argument must be `--name value`; names not in ALLOWED_NAMES are refused.
parse_params() {
  local -A allowed=()
  while [[ $# -gt 0 && $1 != "--" ]]; do
    allowed[$1]=1
    shift
  done
  [[ $# -gt 0 ]] && shift
  allowed[outdir]=1
  local name value
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --?*) name="${1#--}" ;;
      *) usage_error "unexpected argument '$1' (parameters are passed as --name value)" ;;
    esac
    if [[ $name == *=* ]]; then
      value="${name#*=}"
      name="${name%%=*}"
      shift
    else
      [[ $# -ge 2 ]] || usage_error "parameter --$name needs a value"
      value="$2"
      shift 2
    fi
    [[ -n ${allowed[$name]:-} ]] || usage_error "unknown parameter --$name"
    [[ $value != *[[:cntrl:]]* ]] || usage_error "parameter --$name contains control characters"
    PARAMS[$name]+="$value"$'\n'
  done
  local out
  out="$(param outdir)"
  [[ -n $out ]] || usage_error "missing required parameter --outdir"
  [[ -d $out ]] || usage_error "--outdir '$out' is not a directory"
  OUTDIR="$(cd -- "$out" && pwd -P)" || usage_error "--outdir '$out' is not accessible"
  [[ -w $OUTDIR ]] || usage_error "--outdir '$out' is not writable"
}

has_param() { [[ -n ${PARAMS[$1]+set} ]]; }

# The last value given for a parameter (as argparse does), or the default.
param() {
  local name="$1" default="${2:-}"
  if has_param "$name"; then
    local v="${PARAMS[$name]%$'\n'}"
    printf '%s' "${v##*$'\n'}"
  else
    printf '%s' "$default"
  fi
}

# param_all NAME ARRAYNAME: every value given for a repeatable parameter, in order.
param_all() {
  local -n _out="$2"
  _out=()
  if has_param "$1"; then
    mapfile -t _out < <(printf '%s' "${PARAMS[$1]}")
  fi
}

require_param() {
  local v
  v="$(param "$1")"
  [[ -n $v ]] || usage_error "missing required parameter --$1"
  printf '%s' "$v"
}

# choice NAME VALUE ALLOWED...: refuse values outside the allowed set.
check_choice() {
  local name="$1" value="$2"
  shift 2
  local a
  for a in "$@"; do
    [[ $value == "$a" ]] && return 0
  done
  usage_error "parameter --$name: invalid value '$value' (allowed: $*)"
}

# A file name the service will write into (or read from) a flat directory: not empty, no '/',
# no '..', not '.', no control characters, no leading '-'.
is_safe_name() {
  local n="$1"
  [[ -n $n && $n != */* && $n != *..* && $n != . && $n != -* && $n != *[[:cntrl:]]* ]]
}
check_name() {
  local what="$1" n="$2"
  is_safe_name "$n" || usage_error "$what '$n' is not a plain file name (no '/', '..', leading '-' or control characters)"
}

# A relative path inside a tree: not absolute, no '..' component, no control characters.
is_safe_relpath() {
  local p="$1"
  [[ -n $p && $p != /* && $p != *[[:cntrl:]]* ]] || return 1
  [[ /$p/ != */../* ]]
}

# Private scratch directory under $TMPDIR (default /tmp), removed on exit.
make_tmp() {
  TMPROOT="$(mktemp -d "${TMPDIR:-/tmp}/kiln-$SERVICE.XXXXXXXX")" || die "cannot create a temporary directory"
  trap 'rm -rf -- "$TMPROOT"' EXIT
}

# put_output SRC NAME: move (or copy, if SRC is to be kept) SRC into OUTDIR/NAME atomically, replacing
# whatever was there without following it.
put_output() {
  local src="$1" name="$2" mode="${3:-move}"
  check_name "output file name" "$name"
  local tmp="$OUTDIR/.kiln-tmp.$$.$RANDOM"
  if [[ $mode == copy ]]; then
    cp -- "$src" "$tmp" || die "cannot write $name into --outdir"
  else
    mv -f -- "$src" "$tmp" || die "cannot write $name into --outdir"
  fi
  mv -f -T -- "$tmp" "$OUTDIR/$name" || die "cannot write $name into --outdir"
}

# A regular file (not a symlink) in DIR with name NAME.
is_plain_file() { [[ -f $1 && ! -L $1 ]]; }

# find_input NAME: where an input file named NAME is. Looks in the working directory (plain name, then
# the '_service:<svc>:NAME' form, then, for a '_service:<svc>:' name, its plain form) and then in
# OUTDIR. Prints the path; returns 1 if there is none.
find_input() {
  local n="$1" c
  local -a cands=("./$n")
  if [[ $n == _service:*:* ]]; then
    cands+=("./${n#_service:*:}")
  fi
  shopt -s nullglob
  local -a svc=(./_service:*:"$n")
  shopt -u nullglob
  cands+=("${svc[@]}" "$OUTDIR/$n")
  for c in "${cands[@]}"; do
    if is_plain_file "$c"; then
      printf '%s' "$c"
      return 0
    fi
  done
  return 1
}

# Strip a '_service:<svc>:' prefix (OBS's name for a service output).
plain_name() {
  local n="$1"
  if [[ $n == _service:*:* ]]; then
    n="${n#_service:}"
    n="${n#*:}"
  fi
  printf '%s' "$n"
}

# Escape a string for use as a literal inside an extended regular expression.
ere_escape() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [].[\\*^\$+?\(\)\{\}\|]) out+="\\$c" ;;
      *) out+="$c" ;;
    esac
  done
  printf '%s' "$out"
}

# Turn a shell glob (* ? [..] [!..]) into an unanchored ERE fragment; other characters are literal.
glob_to_ere() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      '*') out+='.*' ;;
      '?') out+='.' ;;
      '[')
        local j=$((i + 1)) cls="["
        if [[ ${s:j:1} == '!' || ${s:j:1} == '^' ]]; then
          cls+='^'
          j=$((j + 1))
        fi
        if [[ ${s:j:1} == ']' ]]; then
          cls+=']'
          j=$((j + 1))
        fi
        while [[ $j -lt ${#s} && ${s:j:1} != ']' ]]; do
          [[ ${s:j:1} == '\' ]] && cls+='\'
          cls+="${s:j:1}"
          j=$((j + 1))
        done
        if [[ $j -lt ${#s} ]]; then
          out+="$cls]"
          i=$j
        else
          out+='\['
        fi
        ;;
      *) out+="$(ere_escape "$c")" ;;
    esac
  done
  printf '%s' "$out"
}
