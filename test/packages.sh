# test/packages.sh — sourced by test/run.sh and test/citus/build.sh.
#
# install_missing LOG PACKAGE...: installs those of the Debian packages that
# are not installed yet (apt-get update first, as on a fresh machine); the
# output of apt-get goes to LOG, whose tail is shown if it fails.
install_missing() {
    local log=$1 p missing=()
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 ||
        { tail -20 "$log" >&2; return 1; }
}
