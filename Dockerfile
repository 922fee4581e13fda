# One image for the Asterisk and hotline services of docker-compose.yml:
# Debian sid carries Asterisk 22, which Debian 12 does not package.
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules python3 python3-venv espeak-ng ffmpeg sox \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/yihaotong
COPY pyproject.toml README.md ./
COPY ivr ivr
COPY routing routing
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .
COPY asterisk asterisk
COPY dialplans dialplans
COPY recordings recordings
COPY config config
ENV PATH=/opt/venv/bin:$PATH
ENTRYPOINT ["hotline", "--config", "config/hotline.toml"]
CMD ["serve"]
