# Production-shaped image: Airflow 3.3.2 with the project's pinned requirements and GnuPG.
# Not exercised on the development machines (they have no Docker engine); see README "Production".
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends gnupg openssh-client \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root requirements.txt pyproject.toml /opt/sf/
COPY --chown=airflow:root include /opt/sf/include
RUN pip install --no-cache-dir -r /opt/sf/requirements.txt \
 && pip install --no-cache-dir --no-deps -e /opt/sf
