# One image for the farm's Python services: beat, Flower, the local worker, the `cli` one-shot
# service, and (built with EXTRAS=<provider>) each provider's worker. Builds need no network:
#   deploy/base-image.sh && deploy/wheelhouse.sh && docker compose build
# The base is made locally (deploy/base-image.sh); every package comes from deploy/wheelhouse,
# pinned by deploy/constraints.txt, so an image is the same whenever and wherever it is built.
# Bytecode is compiled at build time: the services run as a non-root user who cannot write it.
ARG BASE_IMAGE=sandbox-farm-base:bookworm
FROM ${BASE_IMAGE}
ARG EXTRAS=flower
COPY deploy/constraints.txt /tmp/constraints.txt
COPY deploy/wheelhouse /tmp/wheelhouse
RUN python3 -m venv /opt/farm \
 && /opt/farm/bin/pip install --no-index --find-links /tmp/wheelhouse -c /tmp/constraints.txt \
        -q "sandbox-farm[${EXTRAS}]" \
 && rm -rf /tmp/wheelhouse /tmp/constraints.txt \
 && mkdir -p /var/lib/farm /home/farm && chown 10001:10001 /var/lib/farm /home/farm
ENV PATH=/opt/farm/bin:$PATH PYTHONUNBUFFERED=1 FARM_DATA_DIR=/var/lib/farm HOME=/home/farm
USER 10001:10001
WORKDIR /home/farm
ENTRYPOINT ["tini", "--", "farm"]
CMD ["--help"]
