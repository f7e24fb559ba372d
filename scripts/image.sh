#!/usr/bin/env bash
# Build the mnist_web image with whichever container engine works here (docker or podman).
#
#   scripts/image.sh build    build $IMAGE (default mnist_web:latest) from the Dockerfile
#   scripts/image.sh base     only make sure the Dockerfile's base image is there (pulled or stand-in)
#   scripts/image.sh env      print ENGINE=... and CONTAINERS_CONF=... for the image tests
#
# The engine: a Docker engine that answers `docker info`, else podman (installed from Debian when
# neither works; a docker client with no engine behind it does not count). When the Dockerfile's
# base image is neither present nor pullable (no image registry reachable), a stand-in with the same
# tag is built from Debian packages with debootstrap (Debian's Python 3.11, not the official build),
# once per machine: its root filesystem is cached in $IMAGE_CACHE.
#
# Environment: IMAGE (mnist_web:latest), IMAGE_ENGINE (docker|podman: skip the detection),
# IMAGE_CACHE (.cache/image), DEBIAN_MIRROR (http://deb.debian.org/debian), PULL_TIMEOUT (60 s).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-mnist_web:latest}
IMAGE_CACHE=${IMAGE_CACHE:-$PWD/.cache/image}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PULL_TIMEOUT=${PULL_TIMEOUT:-60}
PODMAN_PACKAGES=(podman runc uidmap netavark aardvark-dns)

say() { echo "image: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  say "installing from Debian: $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Podman's defaults fail in some sandboxes (it may not raise its own ulimits; crun refuses mixed
# cgroups): a containers.conf of our own, unless the caller brings one.
podman_conf() {
  if [ -n "${CONTAINERS_CONF:-}" ]; then
    echo "$CONTAINERS_CONF"
    return
  fi
  local nofile nproc conf="$IMAGE_CACHE/containers.conf"
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  mkdir -p "$IMAGE_CACHE"
  cat >"$conf.tmp" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  mv "$conf.tmp" "$conf"
  echo "$conf"
}

docker_works() { command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; }
podman_works() { command -v podman >/dev/null && CONTAINERS_CONF=$(podman_conf) timeout 60 podman info >/dev/null 2>&1; }

# Sets ENGINE (docker|podman) and, for podman, exports CONTAINERS_CONF.
choose_engine() {
  ENGINE=${IMAGE_ENGINE:-}
  if [ -z "$ENGINE" ]; then
    if docker_works; then
      ENGINE=docker
    elif podman_works; then
      ENGINE=podman
    else
      command -v docker >/dev/null && say "docker is installed but no Docker engine answers; using podman"
      apt_install "${PODMAN_PACKAGES[@]}"
      podman_works || { say "ERROR: podman was installed but does not work (podman info)"; exit 1; }
      ENGINE=podman
    fi
  fi
  if [ "$ENGINE" = podman ]; then
    CONTAINERS_CONF=$(podman_conf)
    export CONTAINERS_CONF
  fi
}

base_image() {
  # The Dockerfile's first FROM (every stage uses the same pinned base).
  awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile
}

image_present() {
  if [ "$ENGINE" = podman ]; then podman image exists "$1"; else docker image inspect "$1" >/dev/null 2>&1; fi
}

# A Debian bookworm root filesystem with python3, shaped like python:3.11-slim-bookworm: python at
# /usr/local/bin, a pip-installable system Python, and this machine's extra CA certificates (pip in
# the build checks the package index against them).
standin_rootfs() {
  local tarball="$IMAGE_CACHE/bookworm-slim-python3-rootfs.tar"
  if [ -s "$tarball" ]; then
    echo "$tarball"
    return
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  local rootfs
  rootfs=$(mktemp -d "$IMAGE_CACHE/rootfs.XXXXXX")
  say "debootstrap bookworm (minbase + python3) into $rootfs (once per machine)"
  as_root debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$DEBIAN_MIRROR" >&2
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python3"
  rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    as_root chroot "$rootfs" update-ca-certificates >&2
  fi
  # Slim like Debian's bookworm-slim (the official image's base): no docs, man pages or
  # translations, now or from later apt-get installs, and no apt caches.
  as_root tee "$rootfs/etc/dpkg/dpkg.cfg.d/slim" >/dev/null <<'EOF2'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF2
  as_root find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  as_root rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  as_root find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  as_root rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/*.log
  as_root tar -C "$rootfs" -cf "$tarball.tmp" .
  as_root rm -rf "$rootfs"
  mv "$tarball.tmp" "$tarball"
  echo "$tarball"
}

STANDIN_LABEL=mnist_web.standin

# The stand-in's label, inherited by images built on it: empty for a real (pulled) base.
standin_of() {
  "$ENGINE" image inspect --format "{{ index .Config.Labels \"$STANDIN_LABEL\" }}" "$1" 2>/dev/null | grep -v '^<no value>$' || true
}

# The Dockerfile's base image: present and real, else pulled, else a stand-in (made once, then reused
# while no registry answers; the next pull that works replaces it).
ensure_base() {
  local base present=0
  base=$(base_image)
  if image_present "$base"; then
    [ -z "$(standin_of "$base")" ] && return
    present=1
  fi
  say "pulling $base"
  if timeout "$PULL_TIMEOUT" "$ENGINE" pull "$base" >&2; then
    return
  fi
  if [ "$present" = 1 ]; then
    say "could not pull $base: using the LOCAL STAND-IN with that tag built earlier from Debian packages"
    return
  fi
  say "could not pull $base: building a LOCAL STAND-IN with that tag from Debian bookworm packages"
  say "(Debian's python3 3.11, not the official image's build: it checks the Dockerfile, not that interpreter)"
  local tarball
  tarball=$(standin_rootfs)
  "$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL $STANDIN_LABEL=\"debootstrap bookworm: Debian's python3, not $base\"" \
    --change 'CMD ["python3"]' \
    "$tarball" "$(qualified "$base")" >&2
}

# podman names an imported short name localhost/...; FROM python:... means Docker Hub's library.
qualified() {
  case "$1" in
    */*/*) echo "$1" ;;
    */*) echo "docker.io/$1" ;;
    *) echo "docker.io/library/$1" ;;
  esac
}

build() {
  choose_engine
  ensure_base
  local args=(build --tag "$IMAGE" --file Dockerfile)
  # podman writes OCI images by default, which drop HEALTHCHECK; --network=host: a docker engine
  # started with --bridge=none has no other network for RUN steps.
  if [ "$ENGINE" = podman ]; then args+=(--format docker --layers); fi
  args+=(--network=host .)
  say "$ENGINE ${args[*]}"
  local start=$SECONDS
  "$ENGINE" "${args[@]}" >&2
  say "built $IMAGE with $ENGINE in $((SECONDS - start)) s"
}

case "${1:-build}" in
  build) build ;;
  env)
    choose_engine
    echo "ENGINE=$ENGINE"
    if [ "$ENGINE" = podman ]; then echo "CONTAINERS_CONF=$CONTAINERS_CONF"; fi
    ;;
  base)
    choose_engine
    ensure_base
    ;;
  *)
    echo "usage: $0 [build|base|env]" >&2
    exit 2
    ;;
esac
