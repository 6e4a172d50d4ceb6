#!/bin/bash
# Runs once, when the influxdb:2 container initialises its volume (docker-entrypoint-initdb.d):
# maps database "waste" / retention policy "autogen" to the bucket, so the InfluxQL queries of the
# service and of Grafana (v1 compatibility API, /query?db=waste) reach it.
# https://docs.influxdata.com/influxdb/v2/query-data/influxql/dbrp/
set -euo pipefail
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-}"
if [ -z "$bucket_id" ]; then
  bucket_id=$(influx bucket list --org "$DOCKER_INFLUXDB_INIT_ORG" --name "$DOCKER_INFLUXDB_INIT_BUCKET" --hide-headers | cut -f1)
fi
influx v1 dbrp create --org "$DOCKER_INFLUXDB_INIT_ORG" --bucket-id "$bucket_id" --db "$DOCKER_INFLUXDB_INIT_BUCKET" --rp autogen --default
echo "InfluxQL: database $DOCKER_INFLUXDB_INIT_BUCKET (rp autogen) maps to bucket $bucket_id"
