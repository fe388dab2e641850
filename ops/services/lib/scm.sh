# shellcheck shell=bash
# The archive side shared by tar_scm, obs_scm and tar: version strings, file selection and
# reproducible tar/cpio creation. Sourced after common.sh.

# Git must not read the host's or the user's configuration, prompt, or use transports other than
# the allowed ones (this also binds submodules). KILN_SERVICE_ALLOW_LOCAL_URL=1 admits local
# repositories (file:// and absolute paths); the sandboxed runner does not set it.
git_env() {
  export GIT_CONFIG_NOSYSTEM=1
  export GIT_CONFIG_GLOBAL=/dev/null
  export GIT_TERMINAL_PROMPT=0
  export GIT_LFS_SKIP_SMUDGE=1
  export GIT_SSH_COMMAND="ssh -o BatchMode=yes"
  unset GIT_ASKPASS SSH_ASKPASS GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_CONFIG \
    GIT_CONFIG_PARAMETERS GIT_CONFIG_COUNT GIT_EXEC_PATH GIT_TEMPLATE_DIR
  export HOME="$TMPROOT/home"
  mkdir -p -- "$HOME"
  if [[ ${KILN_SERVICE_ALLOW_LOCAL_URL:-} == 1 ]]; then
    export GIT_ALLOW_PROTOCOL="http:https:git:ssh:ftp:ftps:file"
  else
    export GIT_ALLOW_PROTOCOL="http:https:git:ssh:ftp:ftps"
  fi
}

# check_git_url URL: refuse option-like, helper (ext::) and, unless allowed, local URLs.
check_git_url() {
  local url="$1"
  [[ $url != -* ]] || usage_error "parameter --url: '$url' is not a repository URL"
  if [[ $url =~ ^(https?|ftps?|git|ssh)://[^/[:space:]]+ ]]; then
    return 0
  fi
  if [[ $url =~ ^([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:[^/:] && $url != *://* ]]; then
    return 0 # scp-like ssh: [user@]host:path
  fi
  if [[ ${KILN_SERVICE_ALLOW_LOCAL_URL:-} == 1 && ($url == file://* || $url == /*) ]]; then
    return 0
  fi
  usage_error "parameter --url: only http(s)://, ftp(s)://, git:// and ssh URLs are allowed, not '$url'"
}

# The default --filename: the last path component of the URL without a .git suffix.
url_basename() {
  local u="$1"
  u="${u%%[?#]*}"
  while [[ $u == */ ]]; do u="${u%/}"; done
  u="${u%.git}"
  while [[ $u == */ ]]; do u="${u%/}"; done
  if [[ $u == */* ]]; then
    u="${u##*/}"
  elif [[ $u == *:* ]]; then
    u="${u##*:}"
  fi
  printf '%s' "$u"
}

# OBS's clean-up of detected versions: "YYYY-MM-DD HH:MM:SS +ZZZZ" becomes YYYYMMDDTHHMMSS, then
# '-' and ':' are removed (they are not allowed in rpm versions).
version_cleanup() {
  printf '%s' "$1" | sed -E \
    -e 's/([0-9]{4})-([0-9]{2})-([0-9]{2}) +([0-9]{2})(:([0-9]{2})(:([0-9]{2}))?)?( +[-+][0-9]{3,4})/\1\2\3T\4\6\8/g' \
    -e 's/[-:]//g'
}

# --versionrewrite-pattern/--versionrewrite-replacement as POSIX EREs (GNU sed -E); the replacement
# takes \1..\9, '&' is literal as in Python. \x01 cannot occur in parameters, so it is the delimiter.
version_rewrite() {
  local v="$1" pat="$2" rep="$3" d=$'\001'
  rep="${rep//&/\\&}"
  printf '%s' "$v" | sed -E "s${d}${pat}${d}${rep}${d}g" 2>/dev/null ||
    usage_error "parameter --versionrewrite-pattern: invalid regular expression '$pat'"
}

# grep that treats "no line selected" as success but still fails on a bad expression.
grep_filter() {
  local rc=0
  grep "$@" || rc=$?
  [[ $rc -le 1 ]] || die "invalid --include/--exclude pattern"
}

# list_tree WORKDIR TOPDIR PACKAGE_META INCLUDE_ARRAY EXCLUDE_ARRAY > list
# Prints the paths below TOPDIR (relative to WORKDIR, sorted bytewise, TOPDIR itself excluded) that
# make it into the archive: SCM metadata (.git .svn .hg .bzr) only with package-meta, --exclude
# patterns (globs matched as a prefix of the path below TOPDIR) removed, and if --include patterns
# are given only the paths they select.
list_tree() {
  local workdir="$1" top="$2" meta="$3"
  local -n _inc="$4" _exc="$5"
  local topre p alts
  topre="$(ere_escape "$top")"
  if [[ -n "$(cd -- "$workdir" && find "$top" -mindepth 1 -name '*[[:cntrl:]]*' -print -quit)" ]]; then
    die "the tree contains a file name with control characters"
  fi
  (cd -- "$workdir" && find "$top" -mindepth 1 -print) | {
    if [[ $meta == yes ]]; then cat; else grep_filter -Ev '/\.(bzr|git|hg|svn)(/|$)'; fi
  } | {
    if [[ ${#_exc[@]} -gt 0 ]]; then
      alts=""
      for p in "${_exc[@]}"; do alts+="${alts:+|}$(glob_to_ere "$p")"; done
      grep_filter -Ev "^$topre/($alts)"
    else
      cat
    fi
  } | {
    if [[ ${#_inc[@]} -gt 0 ]]; then
      alts=""
      for p in "${_inc[@]}"; do alts+="${alts:+|}$(glob_to_ere "$p")"; done
      grep_filter -E "^$topre/($alts)"
    else
      cat
    fi
  } | LC_ALL=C sort
}

# make_tar WORKDIR TOPDIR LIST MTIME OUTFILE EXTENSION: a reproducible tarball of TOPDIR/ plus LIST
# (owner root:0, group root:0, every mtime MTIME, GNU format, names in LIST order), compressed
# according to EXTENSION.
make_tar() {
  local workdir="$1" top="$2" list="$3" mtime="$4" out="$5" ext="$6"
  local -a comp=(cat)
  case "$ext" in
    tar) ;;
    tar.gz | tgz) comp=(gzip -n -c) ;;
    tar.bz2 | tbz2) comp=(bzip2 -9 -c) ;;
    tar.xz | txz) comp=(xz -T1 -6 -c) ;;
    tar.zst | tzst) comp=(zstd -q -15 -c) ;;
    *) usage_error "parameter --extension: unsupported archive extension '$ext'" ;;
  esac
  {
    printf '%s\n' "$top"
    cat -- "$list"
  } >"$list.all"
  (cd -- "$workdir" && tar --create --file - --format=gnu --no-recursion --owner=root:0 --group=root:0 \
    --mtime="@$mtime" --verbatim-files-from --no-unquote -T "$list.all") | "${comp[@]}" >"$out" ||
    die "creating the archive failed"
}

# make_obscpio WORKDIR LIST MTIME OUTFILE: a reproducible newc cpio archive of LIST (OBS's .obscpio:
# no entry for the top directory itself, owner 0:0, every mtime MTIME).
make_obscpio() {
  local workdir="$1" list="$2" mtime="$3" out="$4"
  (cd -- "$workdir" && tr '\n' '\0' <"$list" | xargs -0 -r touch -h -d "@$mtime" --) ||
    die "cannot set file times"
  (cd -- "$workdir" && cpio --quiet --create --format=newc --owner 0:0 --reproducible <"$list") >"$out" ||
    die "creating the cpio archive failed"
}

# copy_extracts TREE PATTERNS_ARRAY: --extract: copy files of TREE matching each glob into OUTDIR
# under their base names; a file that resolves (via symlinks) outside TREE is refused.
copy_extracts() {
  local tree="$1"
  local -n _pats="$2"
  local p f real base treereal
  treereal="$(cd -- "$tree" && pwd -P)"
  for p in "${_pats[@]}"; do
    shopt -s nullglob
    # shellcheck disable=SC2206 # glob on purpose
    local -a hits=("$tree"/$p)
    shopt -u nullglob
    [[ ${#hits[@]} -gt 0 ]] || die "--extract '$p': no such file in the repository"
    for f in "${hits[@]}"; do
      real="$(readlink -f -- "$f")" || die "--extract '$p': cannot resolve ${f#"$tree"/}"
      [[ $real == "$treereal"/* ]] || die "--extract '$p': ${f#"$tree"/} points outside the repository"
      [[ -f $real ]] || die "--extract '$p': ${f#"$tree"/} is not a regular file"
      base="${f##*/}"
      check_name "--extract file name" "$base"
      put_output "$real" "$base" copy
      info "extracted ${f#"$tree"/}"
    done
  done
}

# git: run GIT_DIR-less git in the clone.
g() { git -C "$CLONE" "$@"; }

# resolve_revision REV: the commit a --revision names (commit id, branch, tag or explicit ref).
resolve_revision() {
  local rev="$1" cand c
  for cand in "$rev" "origin/$rev" "refs/tags/$rev"; do
    if c="$(g rev-parse --verify --quiet --end-of-options "$cand^{commit}")"; then
      printf '%s' "$c"
      return 0
    fi
  done
  if g fetch --quiet -- origin "$rev" 2>/dev/null; then
    if c="$(g rev-parse --verify --quiet FETCH_HEAD^{commit})"; then
      printf '%s' "$c"
      return 0
    fi
  fi
  return 1
}

# The nearest tag reachable from HEAD (git describe --tags --abbrev=0 [--match GLOB]).
parent_tag() {
  local match="$1"
  if [[ -n $match ]]; then
    g describe --tags --abbrev=0 --match "$match" HEAD 2>/dev/null || true
  else
    g describe --tags --abbrev=0 HEAD 2>/dev/null || true
  fi
}

# scm_git_main MODE ARGS...: tar_scm (MODE=tar) and obs_scm (MODE=obscpio).
scm_git_main() {
  local mode="$1"
  shift
  parse_params scm url revision subdir filename version versionformat versionprefix \
    versionrewrite-pattern versionrewrite-replacement match-tag parent-tag exclude include extract \
    package-meta submodules sslverify changesgenerate changesauthor extension without-version \
    history-depth lfs encoding locale -- "$@"

  local scm url revision subdir filename version vformat vprefix meta submodules sslverify ext
  scm="$(require_param scm)"
  [[ $scm == git ]] || usage_error "parameter --scm: '$scm' is not supported by kiln (only git)"
  url="$(require_param url)"
  check_git_url "$url"
  revision="$(param revision)"
  [[ $revision != -* ]] || usage_error "parameter --revision: '$revision' is not a revision"
  subdir="$(param subdir)"
  subdir="${subdir#./}"
  while [[ $subdir == */ ]]; do subdir="${subdir%/}"; done
  if [[ -n $subdir ]]; then
    is_safe_relpath "$subdir" || usage_error "parameter --subdir: '$subdir' must be a relative path inside the repository"
  fi
  filename="$(param filename)"
  if has_param filename; then
    check_name "parameter --filename" "$filename"
  else
    filename="$(url_basename "$url")"
    is_safe_name "$filename" || usage_error "cannot derive a file name from --url '$url'; pass --filename"
  fi
  version="$(param version _auto_)"
  vformat="$(param versionformat)"
  vprefix="$(param versionprefix)"
  meta="$(param package-meta no)"
  check_choice package-meta "$meta" yes no
  submodules="$(param submodules enable)"
  check_choice submodules "$submodules" enable disable master main
  sslverify="$(param sslverify enable)"
  check_choice sslverify "$sslverify" enable disable
  [[ "$(param changesgenerate disable)" == disable ]] || usage_error "parameter --changesgenerate: enable is not supported by kiln"
  [[ "$(param lfs disable)" == disable ]] || usage_error "parameter --lfs: enable is not supported by kiln"
  if [[ $mode == tar ]]; then
    ext="$(param extension tar)"
  else
    has_param extension && usage_error "unknown parameter --extension"
    ext=obscpio
  fi
  local -a includes excludes extracts
  param_all include includes
  param_all exclude excludes
  param_all extract extracts
  if [[ ${#includes[@]} -gt 0 && ${#excludes[@]} -gt 0 ]]; then
    usage_error "parameters --include and --exclude cannot be combined"
  fi
  local p
  for p in "${includes[@]}" "${excludes[@]}" "${extracts[@]}"; do
    is_safe_relpath "${p#./}" || usage_error "--include/--exclude/--extract '$p' must be a relative path without '..'"
  done
  has_param history-depth && info "parameter --history-depth is obsolete and ignored"

  make_tmp
  git_env
  CLONE="$TMPROOT/clone"
  local -a gitopts=(-c advice.detachedHead=false)
  [[ $sslverify == disable ]] && gitopts+=(-c http.sslVerify=false)

  info "cloning $url"
  git "${gitopts[@]}" clone --quiet --no-checkout -- "$url" "$CLONE" 2>"$TMPROOT/err" ||
    die "git clone of $url failed: $(grep -v '^$' "$TMPROOT/err" | tail -n 1)"

  # Which commit: --revision, @PARENT_TAG@ (the nearest tag of the default branch), or the default branch.
  local commit
  if [[ -z $revision ]]; then
    commit="$(g rev-parse --verify --quiet HEAD^{commit})" || die "the repository $url has no default branch; pass --revision"
  elif [[ $revision == "@PARENT_TAG@" ]]; then
    local pt
    pt="$(parent_tag "$(param match-tag)")"
    [[ -n $pt ]] || die "--revision @PARENT_TAG@: no tag is reachable from the default branch"
    commit="$(resolve_revision "refs/tags/$pt")" || die "--revision @PARENT_TAG@: cannot resolve tag $pt"
  else
    commit="$(resolve_revision "$revision")" || die "parameter --revision: '$revision' not found in $url"
  fi
  g "${gitopts[@]}" checkout --quiet --force --detach "$commit" 2>"$TMPROOT/err" ||
    die "git checkout of $commit failed: $(tail -n 1 "$TMPROOT/err")"
  if [[ $submodules != disable && -f $CLONE/.gitmodules ]]; then
    local -a subargs=(submodule --quiet update --init --recursive)
    [[ $submodules == enable ]] || subargs+=(--remote)
    g "${gitopts[@]}" "${subargs[@]}" 2>"$TMPROOT/err" ||
      die "updating git submodules failed: $(tail -n 1 "$TMPROOT/err")"
  fi

  # Version: _none_ → none; _auto_ or a --versionformat → `git log` of the commit with the format.
  local mtime
  mtime="$(g log -n1 --no-show-signature --format=%ct HEAD)"
  if [[ $version == _none_ ]]; then
    version=""
  else
    if [[ $version == _auto_ || -n $vformat ]]; then
      local fmt="${vformat:-%ct}" ptag=""
      if [[ $fmt == *@PARENT_TAG@* || $fmt == *@TAG_OFFSET@* ]]; then
        ptag="$(param parent-tag)"
        [[ -n $ptag ]] || ptag="$(parent_tag "$(param match-tag)")"
        [[ -n $ptag ]] || die "--versionformat $fmt: no tag is reachable from the checked out revision"
      fi
      fmt="${fmt//@PARENT_TAG@/$ptag}"
      if [[ $fmt == *@TAG_OFFSET@* ]]; then
        local off
        off="$(g rev-list --count --end-of-options "$ptag..HEAD" 2>/dev/null)" ||
          die "--versionformat: @TAG_OFFSET@ cannot be computed from tag $ptag"
        fmt="${fmt//@TAG_OFFSET@/$off}"
      fi
      version="$(g log -n1 --no-show-signature --date=format:%Y%m%d "--pretty=format:$fmt" HEAD)"
      version="${version%$'\n'}"
    fi
    if has_param versionrewrite-pattern; then
      version="$(version_rewrite "$version" "$(param versionrewrite-pattern)" "$(param versionrewrite-replacement '\1')")"
    else
      version="$(version_cleanup "$version")"
    fi
    [[ -n $vprefix ]] && version="$vprefix.$version"
  fi
  [[ $version != *[[:cntrl:]]* ]] || die "the version '$version' contains control characters"

  local dstname="$filename"
  if [[ -n $version && -z "$(param without-version)" ]]; then
    dstname="$filename-$version"
  fi
  check_name "archive name (--filename-version)" "$dstname"
  check_name "archive file name" "$dstname.$ext"

  # The tree to archive: the clone, or --subdir of it (which must stay inside the clone).
  local src="$CLONE" clonereal
  clonereal="$(cd -- "$CLONE" && pwd -P)"
  if [[ -n $subdir ]]; then
    src="$CLONE/$subdir"
    local real
    real="$(readlink -f -- "$src")" || die "--subdir $subdir: no such directory in the repository"
    [[ $real == "$clonereal"/* ]] || die "--subdir $subdir: points outside the repository"
    [[ -d $real && ! -L $src ]] || die "--subdir $subdir: no such directory in the repository"
  fi
  mkdir -- "$TMPROOT/work"
  mv -T -- "$src" "$TMPROOT/work/$dstname"
  local tree="$TMPROOT/work/$dstname"

  if [[ ${#extracts[@]} -gt 0 ]]; then
    copy_extracts "$tree" extracts
  fi

  local list="$TMPROOT/list"
  list_tree "$TMPROOT/work" "$dstname" "$meta" includes excludes >"$list"
  if [[ $mode == tar ]]; then
    make_tar "$TMPROOT/work" "$dstname" "$list" "$mtime" "$TMPROOT/archive" "$ext"
  else
    make_obscpio "$TMPROOT/work" "$list" "$mtime" "$TMPROOT/archive"
  fi
  put_output "$TMPROOT/archive" "$dstname.$ext"
  info "created $dstname.$ext from $url at $commit"

  if [[ $mode == obscpio ]]; then
    check_name "obsinfo file name" "$filename.obsinfo"
    printf 'name: %s\nversion: %s\nmtime: %s\ncommit: %s\n' "$filename" "$version" "$mtime" "$commit" >"$TMPROOT/obsinfo"
    put_output "$TMPROOT/obsinfo" "$filename.obsinfo"
    info "created $filename.obsinfo"
  fi
}
