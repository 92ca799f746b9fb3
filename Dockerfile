# Production image: Airflow 3.3.2 with the production lock (requirements.txt, no test tools), GnuPG and
# the OpenSSH client, the DAGs, plugins and the compiled HMAC extension. Checked by hadolint in CI; no
# Docker engine runs on the development machines.

# The official image runs as the airflow user, uid 50000 in group 0 (root).
# Stage 1: compile the optional C extension (setup.py) with gcc and OpenSSL's headers, which the runtime
# image does not carry. The extension is optional to setup.py, so without the headers the build would skip it
# silently: the find below fails the image instead.
FROM apache/airflow:3.3.2-python3.11 AS build
USER 0
# Debian's security updates replace exact package versions; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
USER 50000
WORKDIR /opt/sf
COPY --chown=50000:0 pyproject.toml setup.py ./
COPY --chown=50000:0 include ./include
RUN pip install --no-cache-dir --no-deps -e . \
 && test -n "$(find include/supporting_families/share -name '_hmac*.so')"

# The demo's partner SFTP server (docker-compose.yml, service partner-sshd): OpenSSH only, kept out of the
# Airflow image. Its sshd_config, host key and partners' chroots come from the partner-sftp volume.
FROM debian:12.8-slim AS partner-sshd
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/sshd
CMD ["/usr/sbin/sshd", "-D", "-e", "-f", "/opt/sf/sftp/sshd_config"]

# Stage 3 (the default target): the runtime, with the production requirements and the built extension.
FROM apache/airflow:3.3.2-python3.11
USER 0
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gnupg openssh-client \
 && rm -rf /var/lib/apt/lists/*
USER 50000
WORKDIR /opt/sf
COPY --chown=50000:0 requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY --from=build --chown=50000:0 /opt/sf/include ./include
COPY --chown=50000:0 dags ./dags
COPY --chown=50000:0 plugins ./plugins
# airflow-init creates the roles and the admin login with it (docker-compose.yml).
COPY --chown=50000:0 scripts/airflow_access.py ./scripts/
ENV PYTHONPATH=/opt/sf/include \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/sf/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/sf/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
