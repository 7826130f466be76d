# syntax=docker/dockerfile:1
# The tgtrunk appliance: Debian sid's own Asterisk 22 (LTS) and tgtrunk, run as the user `tgtrunk` under tini.
# Build and check it with scripts/image-test.sh (podman or docker); figures are in the README.
#
# The base is pinned by its date tag; pass --build-arg BASE_IMAGE=debian:sid-YYYYMMDD-slim (or @sha256:…) to move.
# Only what has a wheel for the base's Python is installed (--only-binary): a dependency that would need a compiler
# fails the build here instead of pulling a toolchain into the image.
ARG BASE_IMAGE=debian:sid-20261027-slim

FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update -o Acquire::Check-Valid-Until=false \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates binutils
WORKDIR /opt/tgtrunk
COPY pyproject.toml README.md ./
COPY app ./app
# A network whose TLS is inspected by a local CA: pass that CA as the secret `ca` (scripts/image-test.sh does).
# pyaes (a kurigram dependency) is pure Python and published as source only.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv .venv \
 && .venv/bin/pip install --only-binary=:all: --no-binary=pyaes -e . \
 && .venv/bin/pip uninstall -y pip \
 && .venv/bin/python -m compileall -q .venv/lib \
 && strip --strip-unneeded $(printf ' --keep-symbol=%s' \
      _ZN6webrtc10LogMessage10LogToDebugENS_15LoggingSeverityE \
      _ZN6webrtc10LogMessage14AddLogToStreamEPNS_7LogSinkENS_15LoggingSeverityE \
      _ZN6webrtc10LogMessage17RemoveLogToStreamEPNS_7LogSinkE _ZN6webrtc10LogMessage8streams_E) \
      .venv/lib/python3*/site-packages/ntgcalls*.so
# ntgcalls' wheel ships debug info (136 -> 43 MB stripped); the kept symbols are WebRTC's logging functions that
# app/telegram/nativelog.py calls (docs/decisions.md, "WebRTC's logging inside NTgCalls").

FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
COPY asterisk/modules.conf /tmp/modules.conf
# Asterisk loads only the modules tgtrunk names (autoload = no): the others and the sounds are dropped (its XML
# documentation stays: Stasis refuses to start without it).
RUN apt-get update -o Acquire::Check-Valid-Until=false \
 && apt-get install -y --no-install-recommends asterisk asterisk-modules python3 tini ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/* \
 && moddir=$(dirname "$(find /usr/lib -name chan_pjsip.so | head -1)") \
 && for module in "$moddir"/*.so; do \
      grep -q "^load => $(basename "$module")$" /tmp/modules.conf || rm -f "$module"; \
    done \
 && rm -rf /usr/share/asterisk/sounds/* /usr/share/asterisk/moh/* /tmp/modules.conf \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/tgtrunk --shell /usr/sbin/nologin tgtrunk \
 && install -d -m 0700 -o tgtrunk -g tgtrunk /var/lib/tgtrunk

WORKDIR /opt/tgtrunk
COPY --from=build /opt/tgtrunk/.venv ./.venv
COPY pyproject.toml README.md ./
COPY app ./app
COPY asterisk ./asterisk
COPY dialplan ./dialplan
# Installed in place (-e): the Asterisk config templates are read from next to app/. Bytecode is compiled here:
# the user `tgtrunk` cannot write it at run time, and compiling every module at each start costs seconds.
RUN ln -s /opt/tgtrunk/.venv/bin/tgtrunk /usr/local/bin/tgtrunk && .venv/bin/python -m compileall -q app

# Asterisk runs as the same user: SIP and RTP use ports above 1024 and every Asterisk directory is in the data
# volume, so nothing needs root.
USER tgtrunk
ENV TGTRUNK_DATA_DIR=/var/lib/tgtrunk \
    TGTRUNK_HTTP_BIND=0.0.0.0:8080 \
    TGTRUNK_RTP_PORTS=10000-10100
VOLUME /var/lib/tgtrunk
# SIP (UDP/TCP), the RTP range, the admin API (token in the volume's admin-token; /healthz needs none).
EXPOSE 5060/udp 5060/tcp 10000-10100/udp 8080/tcp
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["tgtrunk", "status", "--health"]
ENTRYPOINT ["tini", "--", "tgtrunk"]
CMD ["serve", "--simulate-telegram"]
