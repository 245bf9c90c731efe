# One image recipe for every Python service (workers, beat, Flower); each worker image installs only
# its own provider's extra:  docker build --build-arg EXTRA=daytona -t sandbox-farm:daytona .
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRA=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY farm ./farm
COPY workers ./workers
COPY providers ./providers
RUN python -m venv /opt/farm \
 && /opt/farm/bin/pip install --no-compile ".${EXTRA:+[$EXTRA]}"

FROM ${PYTHON_IMAGE}
# bubblewrap confines the local provider's snippets (read-only host, no network)
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 farm
COPY --from=build /opt/farm /opt/farm
ENV PATH=/opt/farm/bin:$PATH PYTHONUNBUFFERED=1 FARM_DATA_DIR=/var/lib/farm
RUN mkdir -p /var/lib/farm && chown farm /var/lib/farm
USER farm
WORKDIR /home/farm
ENTRYPOINT ["farm"]
CMD ["--help"]
