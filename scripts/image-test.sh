#!/usr/bin/env bash
# Build the appliance image, start it, wait for /healthz, register baresip to a new line, hear the demo tone,
# stop it. Prints the figures the README quotes (build time, image size, start-to-healthy time).
#
#   scripts/image-test.sh            (podman, else docker; IMAGE=… ENGINE=… to choose; NO_CACHE=1 builds afresh;
#                                     RUN_MODE=chroot tries the mount + chroot way directly)
#
# Offline machines: when the Dockerfile's base image cannot be pulled, it is built here with debootstrap from
# apt's own mirror and imported under the same name (so the Dockerfile is unchanged).
# Sandboxes where `podman run` cannot set rlimits (crun: "setrlimit … Operation not permitted"): the script runs the
# built image's root file system with `podman mount` + chroot instead, as the image's user, with the image's
# environment, entrypoint and command; everything else (build, health, SIP, audio) is the same.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-$(command -v podman || command -v docker || true)}
[ -n "$ENGINE" ] || { echo "image-test: needs podman or docker" >&2; exit 2; }
IMAGE=${IMAGE:-localhost/tgtrunk:image-test}
BASE=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
NAME=tgtrunk-image-test-$$
WORK=$(mktemp -d /tmp/tgtrunk-image-test.XXXXXX)
SIP_PORT=${SIP_PORT:-25070}
HTTP_PORT=${HTTP_PORT:-28090}
ARI_PORT=${ARI_PORT:-28098}
RUN_PID=""
MOUNTED=""

cleanup() {
    if [ -n "$RUN_PID" ]; then kill -TERM "$RUN_PID" 2>/dev/null || true; wait "$RUN_PID" 2>/dev/null || true; fi
    "$ENGINE" rm -f -v "$NAME" >/dev/null 2>&1 || true   # with its anonymous data volume
    if [ -n "$MOUNTED" ]; then
        umount "$MOUNTED/proc" "$MOUNTED/dev" "$MOUNTED/var/lib/tgtrunk" 2>/dev/null || true
        "$ENGINE" umount "$NAME-root" >/dev/null 2>&1 || true
        "$ENGINE" rm -f "$NAME-root" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

base_image() {
    if "$ENGINE" image exists "$BASE" 2>/dev/null || "$ENGINE" image inspect "$BASE" >/dev/null 2>&1; then return; fi
    if timeout 120 "$ENGINE" pull -q "$BASE" >/dev/null 2>&1; then return; fi
    echo "==> $BASE cannot be pulled: building it with debootstrap from apt's mirror"
    local mirror
    mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -1)
    [ -n "$mirror" ] || mirror=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list)
    debootstrap --variant=minbase sid "$WORK/base" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    # What the official -slim variant leaves out, and what apt fetched to build it.
    rm -rf "$WORK"/base/usr/share/{doc,man,info,locale}/* "$WORK"/base/var/cache/apt/archives/*.deb \
        "$WORK"/base/var/cache/apt/*.bin "$WORK"/base/var/lib/apt/lists/*
    tar -C "$WORK/base" -c . | "$ENGINE" import - "$BASE" >/dev/null 2>&1
    rm -rf "$WORK/base"
}

build() {
    local secret=()
    # A TLS-inspecting proxy's CA (this machine's bundle) for pip inside the build; harmless elsewhere.
    [ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
    local extra=()
    [ -n "${NO_CACHE:-}" ] && extra+=(--no-cache)
    [ "$(basename "$ENGINE")" = podman ] && extra+=(--isolation=chroot --format docker)
    "$ENGINE" build "${extra[@]}" --network host "${secret[@]}" -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
        || { tail -30 "$WORK/build.log"; exit 1; }
}

# The image's own start: the container engine when it can run it, else its root with chroot (see above).
start() {
    local env=(-e TGTRUNK_SIP_BIND="127.0.0.1:$SIP_PORT" -e TGTRUNK_HTTP_BIND="127.0.0.1:$HTTP_PORT"
               -e TGTRUNK_ARI_PORT="$ARI_PORT" -e TGTRUNK_RTP_PORTS=31000-31100)
    local run=("$ENGINE" run -d --name "$NAME" --network host "${env[@]}")
    if [ "${RUN_MODE:-}" = chroot ]; then
        echo "forced by RUN_MODE=chroot" >"$WORK/run.log"
    elif ! "${run[@]}" "$IMAGE" >"$WORK/run.log" 2>&1 && grep -q setrlimit "$WORK/run.log" && command -v runc >/dev/null \
            && [ "$(basename "$ENGINE")" = podman ]; then
        # crun may not set rlimits in a sandbox (it raises RLIMIT_NOFILE/NPROC); runc with limits inside this
        # machine's hard limits can.
        echo "==> $ENGINE run: $(grep -o 'setrlimit[^:]*' "$WORK/run.log" | head -1) is refused here: using runc with" \
             "--ulimit nofile=$(ulimit -Hn) --ulimit nproc=4096"
        "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
        run+=(--runtime runc --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
        "${run[@]}" "$IMAGE" >"$WORK/run.log" 2>&1 || true
    fi
    if [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ]; then
        CLI="$ENGINE exec $NAME tgtrunk"
        echo "==> started with $ENGINE run"
        if "$ENGINE" exec "$NAME" sh -c 'ls /usr/bin/cc /usr/bin/*gcc*' >/dev/null 2>&1; then
            echo "image-test: the runtime image carries a compiler" >&2; exit 1
        fi
        return
    fi
    echo "==> '$ENGINE run' did not start it ($(grep -o 'setrlimit[^:"]*' "$WORK/run.log" | head -1 || tail -1 "$WORK/run.log")):"
    echo "    running the image's root with $ENGINE mount + chroot"
    "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
    "$ENGINE" create --name "$NAME-root" "$IMAGE" >/dev/null
    MOUNTED=$("$ENGINE" mount "$NAME-root")
    if compgen -G "$MOUNTED/usr/bin/*gcc*" >/dev/null || [ -e "$MOUNTED/usr/bin/cc" ]; then
        echo "image-test: the runtime image carries a compiler" >&2; exit 1
    fi
    mkdir -p "$WORK/data" && chown 10001:10001 "$WORK/data" && chmod 0700 "$WORK/data"
    mount --bind "$WORK/data" "$MOUNTED/var/lib/tgtrunk"   # the volume
    mount -t proc proc "$MOUNTED/proc"
    mount --bind /dev "$MOUNTED/dev"
    local uid entry cmd
    uid=$(grep "^$("$ENGINE" image inspect -f '{{.Config.User}}' "$IMAGE"):" "$MOUNTED/etc/passwd" | cut -d: -f3)
    entry=$("$ENGINE" image inspect -f '{{join .Config.Entrypoint " "}}' "$IMAGE")
    cmd=$("$ENGINE" image inspect -f '{{join .Config.Cmd " "}}' "$IMAGE")
    # The image's environment, then this test's ports (as `run -e` would set them).
    mapfile -t image_env < <("$ENGINE" image inspect -f '{{join .Config.Env "\n"}}' "$IMAGE")
    RUN=(env -i "${image_env[@]}" HOME=/var/lib/tgtrunk TGTRUNK_SIP_BIND="127.0.0.1:$SIP_PORT"
         TGTRUNK_HTTP_BIND="127.0.0.1:$HTTP_PORT" TGTRUNK_ARI_PORT="$ARI_PORT" TGTRUNK_RTP_PORTS=31000-31100
         chroot --userspec="$uid:$uid" "$MOUNTED")
    # shellcheck disable=SC2086
    "${RUN[@]}" $entry $cmd >"$WORK/serve.log" 2>&1 &
    RUN_PID=$!
    CLI="${RUN[*]} tgtrunk"
}

main() {
    base_image
    echo "==> building $IMAGE with $ENGINE"
    local t0 size started
    t0=$(date +%s)
    build
    size=$("$ENGINE" image inspect -f '{{.Size}}' "$IMAGE")
    echo "build: $(( $(date +%s) - t0 )) s; image size: $(( size / 1000000 )) MB"
    started=$(date +%s.%N)
    start
    if ! "$PYTHON" scripts/image_check.py --sip "127.0.0.1:$SIP_PORT" --http "127.0.0.1:$HTTP_PORT" \
            --cli "$CLI" --started "$started"; then
        echo "---- the appliance's log:"; { "$ENGINE" logs "$NAME" 2>/dev/null || cat "$WORK/serve.log"; } | tail -30
        exit 1
    fi
    if [ -n "$RUN_PID" ]; then kill -TERM "$RUN_PID"; wait "$RUN_PID" || true; RUN_PID=""
    else
        if [ "$(basename "$ENGINE")" = podman ]; then  # the image's own HEALTHCHECK command, once
            "$ENGINE" healthcheck run "$NAME" >/dev/null 2>&1 \
                && echo "HEALTHCHECK (tgtrunk status --health): healthy" \
                || { echo "image-test: the image's HEALTHCHECK does not say healthy" >&2; exit 1; }
        fi
        "$ENGINE" stop -t 30 "$NAME" >/dev/null
        echo "stopped: $("$ENGINE" inspect -f 'exit code {{.State.ExitCode}}' "$NAME")"
    fi
    echo "image-test: passed"
}

main "$@"
