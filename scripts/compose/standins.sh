#!/usr/bin/env bash
# Makes sure every base image that Dockerfile and docker-compose.yml name is
# present: already there, or pulled, or, where no registry can be reached,
# built locally as a stand-in under the same name and tag, from programs of
# this host. The committed Dockerfile and compose file stay the standard ones
# that run unchanged wherever a registry is reachable.
#
#   bash scripts/compose/standins.sh [COMPOSE-FILE...]  # prepare the images
#   bash scripts/compose/standins.sh --build IMAGE      # build one stand-in
#   source scripts/compose/standins.sh; ensure_images; echo "$STANDINS"
#
# Stand-ins are built FROM scratch (no image is needed to start from):
#   golang:*                      the host's Go toolchain (/usr/local/go), busybox
#                                 as /bin/sh, CA certificates; GOPATH=/go
#   gcr.io/distroless/static*     CA certificates, tzdata, /etc/passwd with
#                                 nonroot (65532), /tmp; USER 65532, no shell
#   redis:*                       Debian's redis-server and redis-cli with their
#                                 shared libraries and loader, user redis (999),
#                                 /data; the image's entrypoint semantics
#   haproxy:*                     Debian's haproxy with its libraries, user
#                                 haproxy (99), /usr/local/etc/haproxy; the
#                                 image's entrypoint semantics (-W -db)
#   prom/prometheus:*             Debian's prometheus and promtool (package
#                                 prometheus) with their libraries and web
#                                 assets, busybox, user nobody (65534),
#                                 /prometheus; the image's entrypoint and
#                                 default command
# There is none for grafana/grafana-oss (Grafana is not packaged in Debian):
# it is reported in MISSING.
# They need, on the host: /usr/local/go, busybox (Debian busybox-static),
# redis-server + redis-tools, haproxy, prometheus. Each carries the label
# rampart.standin=<what it was built from>.
#
# The images are those of docker-compose.yml, or of the compose files given
# (bash scripts/compose/standins.sh docker-compose.yml deploy/compose/*.yml).
#
# Results: STANDINS (images that are stand-ins, with their source), PRESENT,
# PULLED, MISSING (neither present, nor pulled, nor buildable here; then
# ensure_images returns 1).

set -euo pipefail
shopt -s inherit_errexit

STANDINS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STANDINS=""
PRESENT=""
PULLED=""
MISSING=""

_si_log() { printf '[standins] %s\n' "$*" >&2; }

# referenced_images [COMPOSE-FILE...] lists the external images: every FROM
# of the Dockerfile that is not an earlier stage, and every image: of a
# compose service that is not built here (rampart/*), in docker-compose.yml
# or the files given (relative to the repository root, or absolute).
referenced_images() {
	local root=$STANDINS_ROOT f
	awk 'toupper($1) == "FROM" {
		img = $2; for (i = 2; i <= NF; i++) if (substr($i, 1, 2) == "--") img = $(i+1)
		if (!(img in stage)) print img
		for (i = 1; i <= NF; i++) if (toupper($i) == "AS") stage[$(i+1)] = 1
	}' "$root/Dockerfile"
	[ "$#" -gt 0 ] || set -- docker-compose.yml
	for f in "$@"; do
		case "$f" in /*) ;; *) f=$root/$f ;; esac
		sed -n 's/^[[:space:]]*image:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$f" |
			tr -d "\"'" | { grep -v '^rampart/' || true; }
	done
}

# copy_bin ROOTFS SRC DST copies a dynamically linked program and every
# shared library it loads (per ldd), plus the loader, into ROOTFS.
copy_bin() {
	local rootfs=$1 src=$2 dst=$3 lib
	mkdir -p "$rootfs$(dirname "$dst")"
	cp -L "$src" "$rootfs$dst"
	for lib in $(ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		[ -e "$rootfs$lib" ] && continue
		mkdir -p "$rootfs$(dirname "$lib")"
		cp -L "$lib" "$rootfs$lib"
	done
}

# add_busybox ROOTFS installs busybox as /bin/sh and its applets.
add_busybox() {
	local rootfs=$1 bb applet
	bb=$(command -v busybox) || { _si_log "busybox is missing: apt-get install busybox-static"; return 1; }
	file -L "$bb" 2>/dev/null | grep -q 'statically linked' ||
		_si_log "warning: $bb is not static; install busybox-static"
	mkdir -p "$rootfs/bin" "$rootfs/usr/bin"
	cp -L "$bb" "$rootfs/bin/busybox"
	for applet in $("$bb" --list); do
		[ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
	done
	ln -sf /bin/env "$rootfs/usr/bin/env"
}

# base_etc ROOTFS PASSWD GROUP writes the minimal /etc files.
base_etc() {
	local rootfs=$1
	mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp"
	chmod 1777 "$rootfs/tmp"
	cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
	printf '%s\n' "$2" >"$rootfs/etc/passwd"
	printf '%s\n' "$3" >"$rootfs/etc/group"
	printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
}

# build_from_rootfs NAME ROOTFS SOURCE DOCKERFILE-LINES... builds NAME from
# ROOTFS (ownership and modes kept, through a tar) and the extra lines.
build_from_rootfs() {
	local name=$1 rootfs=$2 source=$3 ctx
	shift 3
	ctx=$(dirname "$rootfs")
	tar -C "$rootfs" --numeric-owner -cf "$ctx/rootfs.tar" .
	{
		echo "FROM scratch"
		echo "ADD rootfs.tar /"
		echo "LABEL rampart.standin=\"$source\""
		printf '%s\n' "$@"
	} >"$ctx/Dockerfile"
	(cd "$ctx" && DOCKER_BUILDKIT=0 docker build -q -t "$name" -f Dockerfile . >/dev/null 2>"$ctx/build.log") || {
		cat "$ctx/build.log" >&2
		return 1
	}
}

standin_golang() {
	local name=$1 tmp rootfs ver
	tmp=$(mktemp -d)
	rootfs=$tmp/rootfs
	[ -x /usr/local/go/bin/go ] || { _si_log "no Go toolchain at /usr/local/go"; return 1; }
	ver=$(/usr/local/go/bin/go env GOVERSION)
	add_busybox "$rootfs"
	base_etc "$rootfs" "root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false" "root:x:0:
nogroup:x:65534:"
	mkdir -p "$rootfs/usr/local" "$rootfs/root" "$rootfs/go/bin" "$rootfs/go/src"
	chmod -R 1777 "$rootfs/go"
	tar -C /usr/local --exclude=go/test --exclude=go/pkg/obj -cf - go | tar -C "$rootfs/usr/local" -xf -
	build_from_rootfs "$name" "$rootfs" "host Go toolchain $ver + busybox" \
		"ENV GOLANG_VERSION=${ver#go} GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"WORKDIR /go" 'CMD ["sh"]'
	rm -rf "$tmp"
	echo "host Go toolchain $ver + busybox"
}

standin_distroless() {
	local name=$1 tmp rootfs
	tmp=$(mktemp -d)
	rootfs=$tmp/rootfs
	base_etc "$rootfs" "root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" "root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:"
	rm -f "$rootfs/etc/nsswitch.conf"
	mkdir -p "$rootfs/home/nonroot" "$rootfs/root" "$rootfs/usr/share"
	chown 65532:65532 "$rootfs/home/nonroot"
	chmod 700 "$rootfs/home/nonroot" "$rootfs/root"
	[ -d /usr/share/zoneinfo ] && cp -a /usr/share/zoneinfo "$rootfs/usr/share/"
	printf 'PRETTY_NAME="Distroless (local stand-in)"\nID=debian\nVERSION_ID="12"\n' >"$rootfs/etc/os-release"
	build_from_rootfs "$name" "$rootfs" "CA certificates + tzdata + passwd, no shell" \
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
		"USER 65532:65532" "WORKDIR /home/nonroot"
	rm -rf "$tmp"
	echo "CA certificates + tzdata + passwd (nonroot 65532), no shell"
}

standin_redis() {
	local name=$1 tmp rootfs ver
	tmp=$(mktemp -d)
	rootfs=$tmp/rootfs
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		_si_log "redis-server/redis-cli missing: apt-get install redis-server redis-tools"
		return 1
	fi
	ver=$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')
	add_busybox "$rootfs"
	base_etc "$rootfs" "root:x:0:0:root:/root:/bin/sh
redis:x:999:999::/home/redis:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin" "root:x:0:
redis:x:999:
nogroup:x:65534:"
	copy_bin "$rootfs" "$(command -v redis-server)" /usr/local/bin/redis-server
	copy_bin "$rootfs" "$(command -v redis-cli)" /usr/local/bin/redis-cli
	mkdir -p "$rootfs/data"
	chown 999:999 "$rootfs/data"
	# The official image disables protected mode at build time and runs
	# "redis-server" for a first argument that is an option or a .conf file.
	cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then
	shift
	case "$1" in
		""|-*) set -- redis-server --protected-mode no "$@" ;;
		*) conf=$1; shift; set -- redis-server "$conf" --protected-mode no "$@" ;;
	esac
fi
exec "$@"
EOF
	chmod 755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
	build_from_rootfs "$name" "$rootfs" "Debian redis-server $ver + busybox" \
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"USER 999:999" "WORKDIR /data" "VOLUME /data" "EXPOSE 6379" \
		'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["redis-server"]'
	rm -rf "$tmp"
	echo "Debian redis-server $ver + busybox"
}

standin_haproxy() {
	local name=$1 tmp rootfs ver
	tmp=$(mktemp -d)
	rootfs=$tmp/rootfs
	command -v haproxy >/dev/null || { _si_log "haproxy missing: apt-get install haproxy"; return 1; }
	ver=$(haproxy -v | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p')
	add_busybox "$rootfs"
	base_etc "$rootfs" "root:x:0:0:root:/root:/bin/sh
haproxy:x:99:99::/var/lib/haproxy:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin" "root:x:0:
haproxy:x:99:
nogroup:x:65534:"
	copy_bin "$rootfs" "$(command -v haproxy)" /usr/local/sbin/haproxy
	mkdir -p "$rootfs/usr/local/etc/haproxy" "$rootfs/usr/local/bin" "$rootfs/var/lib/haproxy" "$rootfs/run"
	chown 99:99 "$rootfs/var/lib/haproxy"
	# The official image's entrypoint.
	cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "$1" ]; then set -- haproxy "$@"; fi
if [ "$1" = haproxy ]; then shift; set -- haproxy -W -db "$@"; fi
exec "$@"
EOF
	chmod 755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
	build_from_rootfs "$name" "$rootfs" "Debian haproxy $ver + busybox" \
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"USER haproxy" "WORKDIR /var/lib/haproxy" "STOPSIGNAL SIGUSR1" \
		'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]'
	rm -rf "$tmp"
	echo "Debian haproxy $ver + busybox"
}

standin_prometheus() {
	local name=$1 tmp rootfs ver
	tmp=$(mktemp -d)
	rootfs=$tmp/rootfs
	if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
		_si_log "prometheus/promtool missing: apt-get install prometheus"
		return 1
	fi
	ver=$(prometheus --version 2>&1 | sed -n '1s/^prometheus, version \([^ ]*\).*/\1/p')
	add_busybox "$rootfs"
	base_etc "$rootfs" "root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false" "root:x:0:
nobody:x:65534:"
	copy_bin "$rootfs" "$(command -v prometheus)" /bin/prometheus
	copy_bin "$rootfs" "$(command -v promtool)" /bin/promtool
	# Debian's build serves its web assets from /usr/share/prometheus/web
	# (its --web.local-assets default); the official image keeps the
	# console templates and libraries under /usr/share/prometheus too.
	mkdir -p "$rootfs/usr/share/prometheus" "$rootfs/etc/prometheus" "$rootfs/prometheus"
	if [ -d /usr/share/prometheus ]; then cp -a /usr/share/prometheus/. "$rootfs/usr/share/prometheus/"; fi
	for d in consoles console_libraries; do
		mkdir -p "$rootfs/usr/share/prometheus/$d"
		if [ -d "/etc/prometheus/$d" ]; then cp -a "/etc/prometheus/$d/." "$rootfs/usr/share/prometheus/$d/"; fi
	done
	# The official image's default configuration: Prometheus scraping itself.
	printf '%s\n' "global:" "  scrape_interval: 15s" "scrape_configs:" "  - job_name: prometheus" \
		"    static_configs:" '      - targets: ["localhost:9090"]' >"$rootfs/etc/prometheus/prometheus.yml"
	chown 65534:65534 "$rootfs/prometheus"
	build_from_rootfs "$name" "$rootfs" "Debian prometheus $ver + busybox" \
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"USER nobody" "WORKDIR /prometheus" "VOLUME /prometheus" "EXPOSE 9090" \
		'ENTRYPOINT ["/bin/prometheus"]' \
		'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.console.libraries=/usr/share/prometheus/console_libraries", "--web.console.templates=/usr/share/prometheus/consoles"]'
	rm -rf "$tmp"
	echo "Debian prometheus $ver + busybox"
}

# ensure_image NAME: present, pulled, or a stand-in; else it is added to
# MISSING and the result is 1.
ensure_image() {
	local name=$1 label how
	if docker image inspect "$name" >/dev/null 2>&1; then
		label=$(docker image inspect -f '{{index .Config.Labels "rampart.standin"}}' "$name" 2>/dev/null || true)
		if [ -n "$label" ]; then
			STANDINS+="$name  (stand-in, built earlier: $label)"$'\n'
		else
			PRESENT+="$name"$'\n'
		fi
		return 0
	fi
	if timeout 60 docker pull -q "$name" >/dev/null 2>&1; then
		PULLED+="$name"$'\n'
		return 0
	fi
	_si_log "$name: not present and cannot be pulled; building a local stand-in"
	# In a process of its own: there errexit holds in every step of the
	# recipe, which it would not in the condition of this if.
	if how=$(bash "$STANDINS_ROOT/scripts/compose/standins.sh" --build "$name"); then
		STANDINS+="$name  (stand-in, built now: $how)"$'\n'
		return 0
	fi
	MISSING+="$name"$'\n'
	return 1
}

# build_standin NAME builds the stand-in for NAME and prints what it is
# made of; 1 when there is no recipe or the build failed.
build_standin() {
	case "$1" in
		golang:*) standin_golang "$1" ;;
		gcr.io/distroless/static*) standin_distroless "$1" ;;
		redis:*) standin_redis "$1" ;;
		haproxy:*) standin_haproxy "$1" ;;
		prom/prometheus:*) standin_prometheus "$1" ;;
		grafana/*) _si_log "$1: no stand-in (Grafana is not packaged in Debian)"; return 1 ;;
		*) _si_log "$1: no stand-in recipe"; return 1 ;;
	esac
}

# ensure_images [COMPOSE-FILE...]: every image of the Dockerfile and of the
# compose files (default docker-compose.yml); 1 when any is MISSING.
ensure_images() {
	local img rc=0
	for img in $(referenced_images "$@" | sort -u); do
		ensure_image "$img" || rc=1
	done
	return "$rc"
}

if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${1:-}" = --build ]; then
	build_standin "$2"
elif [ "${BASH_SOURCE[0]}" = "$0" ]; then
	rc=0
	ensure_images "$@" || rc=1
	[ -z "$PRESENT" ] || printf 'present:\n%s' "$PRESENT"
	[ -z "$PULLED" ] || printf 'pulled:\n%s' "$PULLED"
	[ -z "$STANDINS" ] || printf 'LOCAL STAND-INS (not the registry images):\n%s' "$STANDINS"
	[ -z "$MISSING" ] || printf 'MISSING (no registry, no stand-in):\n%s' "$MISSING"
	exit "$rc"
fi
