# tgtrunk with the system Asterisk of Debian sid (22 LTS): `tgtrunk asterisk install` finds it and builds nothing.
FROM debian:sid-slim

ENV DEBIAN_FRONTEND=noninteractive \
    TGTRUNK_DATA_DIR=/var/lib/tgtrunk \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update -o Acquire::Check-Valid-Until=false \
 && apt-get install -y --no-install-recommends asterisk asterisk-modules python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/tgtrunk
COPY pyproject.toml README.md ./
COPY app ./app
COPY asterisk ./asterisk
COPY dialplan ./dialplan
RUN python3 -m venv /opt/tgtrunk/.venv && /opt/tgtrunk/.venv/bin/pip install --no-cache-dir -e . \
 && ln -s /opt/tgtrunk/.venv/bin/tgtrunk /usr/local/bin/tgtrunk

VOLUME /var/lib/tgtrunk
# SIP (UDP/TCP), the RTP range and the admin API (bind it with TGTRUNK_HTTP_BIND=0.0.0.0:8080 to publish it).
EXPOSE 5060/udp 5060/tcp 10000-10100/udp 8080/tcp
ENV TGTRUNK_RTP_PORTS=10000-10100
ENTRYPOINT ["tgtrunk"]
CMD ["serve", "--simulate-telegram"]
