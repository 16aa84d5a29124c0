# Sourced by scripts that need Debian's archive: prints the mirror this
# machine's apt already uses (the URI of the deb822 source that carries the
# "bookworm" suite, or of a one-line sources.list entry), so that no host
# name is written into the repository.
debian_mirror() {
    local m
    m=$(awk '/^URIs:/ { uri = $2 } /^Suites:/ && / bookworm( |$)/ { print uri; exit }' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
    fi
    if [ -z "$m" ]; then
        echo "no Debian bookworm mirror in /etc/apt/sources.list(.d); add one first" >&2
        return 1
    fi
    echo "${m%/}"
}
