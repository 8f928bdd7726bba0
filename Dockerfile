# syntax=docker/dockerfile:1
# One image for every Cornjacket service: `cornjacket serve <service>` picks the process.
#
# The project is installed *editable* from /app: docker-compose and deploy/ name
# /app/gen/envoy/cornjacket.pb. (A wheel carries its data files since ADR 22, so a regular
# `pip install .` would run too; services/infra/assets.py finds either.)

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app

# Dependencies first, read from pyproject.toml alone, so a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY services/ services/
COPY gen/ gen/
COPY migrations/ migrations/
COPY envoy/ envoy/
COPY sdk/ sdk/
COPY setup.py MANIFEST.in ./
# Editable: the venv points at /app/services and /app/gen/python, so the final stage must
# keep both the venv and /app at exactly these paths.
RUN pip install --no-deps -e . \
    && python -c "import services.cli.main, cornjacket.v1.ingestion_pb2, cornjacket.v1.query_pb2, cornjacket.v1.actions_pb2, cornjacket_sdk.webhooks"


FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 cornjacket \
    && useradd --system --uid 10001 --gid cornjacket --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin cornjacket
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
# docker-compose's envoy-config job writes the rendered Envoy config into a named volume
# mounted at /envoy and keeps the token signing keys in one at /auth; a new volume takes the
# directory's owner, so the non-root user can write them.
RUN mkdir /envoy /auth && chown cornjacket:cornjacket /envoy /auth \
    && chmod 700 /auth
# docker-compose.yml's one-shots write the per-service database passwords (`cornjacket
# db-roles`, one volume per service) and the webhook secrets key into volumes mounted here.
RUN mkdir -p /dbroles/ingestion /dbroles/eventhandler /dbroles/query /dbroles/actions /actions-key \
    && chown -R cornjacket:cornjacket /dbroles /actions-key \
    && chmod 700 /dbroles/ingestion /dbroles/eventhandler /dbroles/query /dbroles/actions /actions-key
# The RDS CA bundle, for `sslmode=verify-full&sslrootcert=/app/certs/rds-global-bundle.pem` in
# the deployment's database URLs (deploy/README.md): fetched over HTTPS at build time, so a
# new bundle from AWS needs a rebuild (build args: RDS_CA_BUNDLE_URL for a region's bundle).
ARG RDS_CA_BUNDLE_URL=https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
ADD --chmod=644 ${RDS_CA_BUNDLE_URL} /app/certs/rds-global-bundle.pem
WORKDIR /app
# Numeric, so runtimes that enforce runAsNonRoot can verify it.
USER 10001:10001
# ingestion, query, eventhandler (gRPC + gRPC health)
EXPOSE 50051 50052 50053
ENTRYPOINT ["cornjacket"]
CMD ["serve", "ingestion"]
